#!/usr/bin/env python3
"""Writes an OCI image layout at OUT from a root filesystem tar, as its one
(uncompressed) layer, and one image per tag of the JSON map of tag to image
config (Env, Cmd, WorkingDir, ExposedPorts, ... as a Dockerfile sets them)
read on stdin; an image config without Env gets Docker's default PATH.
The tar is moved into OUT's blobs (it must be on OUT's file system).
  oci-layout.py OUT ROOTFS_TAR CREATED_BY <CONFIGS_JSON
Used by examples/*/build-image (examples/lib/build-image.sh's oci_layout)."""
import hashlib
import json
import os
import platform
import sys
import time

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def main():
    out, tar, created_by = sys.argv[1:]
    images = json.load(sys.stdin)
    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs)

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + digest, "size": len(data)}

    h = hashlib.sha256()
    with open(tar, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar",
             "digest": "sha256:" + h.hexdigest(), "size": os.path.getsize(tar)}
    os.rename(tar, os.path.join(blobs, h.hexdigest()))
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifests = []
    for tag, config in images.items():
        config = {"Env": [PATH], **config}
        cfg = blob(json.dumps({
            "created": created, "architecture": arch, "os": "linux", "config": config,
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
            "history": [{"created": created, "created_by": created_by}],
        }).encode())
        man = blob(json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
            "layers": [layer],
        }).encode())
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", **man,
                          "annotations": {"org.opencontainers.image.ref.name": tag}})
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": manifests}, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


main()
