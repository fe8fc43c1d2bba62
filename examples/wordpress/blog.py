"""A small blog in place of WordPress (whose image runs PHP in Apache), with
WordPress's contract to its pod: it finds MySQL at WORDPRESS_DB_HOST
(the headless Service wordpress-mysql) as WORDPRESS_DB_USER with
WORDPRESS_DB_PASSWORD (from the Secret), keeps posts in the database
WORDPRESS_DB_NAME (default wordpress, table wp_posts) and its uploads under
/var/www/html/wp-content/uploads (the pod's claim), on port 80:
  GET  /                         the posts, newest first (HTML)
  GET  /?p=ID                    one post (JSON: id, title, content, upload)
  POST /wp-admin/post.php        post_title=...&content=... adds a post, and
                                 its content as an upload; JSON {"id": ID}
  GET  /wp-content/uploads/NAME  an upload
  GET  /wp-admin/install.php     {"database": VERSION}: the database answers
Built into the image by build-image (/usr/local/lib/blog/blog.py)."""

import html
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pymysql

UPLOADS = Path("/var/www/html/wp-content/uploads")


def db():
    return pymysql.connect(
        host=os.environ.get("WORDPRESS_DB_HOST", "mysql"),
        user=os.environ.get("WORDPRESS_DB_USER", "root"),
        password=os.environ.get("WORDPRESS_DB_PASSWORD", ""),
        database=os.environ.get("WORDPRESS_DB_NAME", "wordpress"),
        connect_timeout=3,
        autocommit=True,
    )


def query(sql, *args):
    with db() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS wp_posts (ID BIGINT AUTO_INCREMENT PRIMARY KEY,"
            " post_title TEXT NOT NULL, post_content LONGTEXT NOT NULL,"
            " post_date DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        cur.execute(sql, args)
        return cur.lastrowid, cur.fetchall()


class Blog(BaseHTTPRequestHandler):
    def answer(self, code, body, kind="application/json"):
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            if url.path.startswith("/wp-content/uploads/"):
                name = url.path.rsplit("/", 1)[1]
                path = UPLOADS / name
                if not name or name.startswith(".") or not path.is_file():
                    return self.answer(404, {"error": "no such upload"})
                return self.answer(200, path.read_text(), "text/plain; charset=utf-8")
            if url.path == "/wp-admin/install.php":
                _, rows = query("SELECT VERSION()")
                return self.answer(200, {"database": rows[0][0]})
            if url.path != "/":
                return self.answer(404, {"error": "not found"})
            if "p" in params:
                _, rows = query(
                    "SELECT ID, post_title, post_content FROM wp_posts WHERE ID = %s",
                    params["p"],
                )
                if not rows:
                    return self.answer(404, {"error": "no such post"})
                id_, title, content = rows[0]
                upload = f"/wp-content/uploads/{id_}.txt"
                return self.answer(
                    200, {"id": id_, "title": title, "content": content, "upload": upload}
                )
            _, rows = query("SELECT ID, post_title, post_content FROM wp_posts ORDER BY ID DESC")
            posts = "".join(
                f"<article><h2><a href='/?p={i}'>{html.escape(t)}</a></h2>"
                f"<p>{html.escape(c)}</p></article>"
                for i, t, c in rows
            )
            page = f"<!doctype html><title>Blog</title><h1>Blog</h1>{posts or '<p>No posts yet.</p>'}"
            return self.answer(200, page, "text/html; charset=utf-8")
        except pymysql.MySQLError as e:  # the database is not there (yet)
            return self.answer(503, {"error": f"database: {e}"})

    def do_POST(self):
        if urlsplit(self.path).path != "/wp-admin/post.php":
            return self.answer(404, {"error": "not found"})
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if not form.get("post_title"):
            return self.answer(400, {"error": "post_title is required"})
        try:
            id_, _ = query(
                "INSERT INTO wp_posts (post_title, post_content) VALUES (%s, %s)",
                form["post_title"],
                form.get("content", ""),
            )
        except pymysql.MySQLError as e:
            return self.answer(503, {"error": f"database: {e}"})
        UPLOADS.mkdir(parents=True, exist_ok=True)
        (UPLOADS / f"{id_}.txt").write_text(form.get("content", ""))
        return self.answer(200, {"id": id_})


if __name__ == "__main__":
    print("blog on :80", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 80), Blog).serve_forever()
