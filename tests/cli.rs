//! The command line as a user installs and scripts it: the shell
//! completions (loaded into a real bash), the man pages (rendered by
//! `man`), every listing command's `--format json`, and the exit code of a
//! bad argument.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{TestEnv, binary, env_with_busybox, stderr_of, stdout_of, test_user};

/// What bash's completion of `minipod WORDS… CURRENT` offers, with the
/// script `minipod completion bash` printed loaded as a user's shell does.
fn bash_completes(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let words: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let line = format!(
        "source {}; COMP_WORDS=(minipod {}); COMP_CWORD={}; \
         _minipod minipod \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words.join(" "),
        words.len(),
    );
    let out = Command::new("bash").args(["-c", &line]).output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    stdout_of(&out).lines().map(str::to_string).collect()
}

#[test]
fn bash_loads_the_completions_and_offers_no_hidden_command() {
    let env = TestEnv::new();
    let script = env.work().join("minipod.bash");
    std::fs::write(&script, env.ok(["completion", "bash"])).unwrap();

    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source {}; complete -p minipod", script.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let registered = stdout_of(&out);
    assert!(
        registered.contains("-F _minipod minipod"),
        "complete -p minipod: {registered}"
    );

    let top = bash_completes(&script, &[""]);
    for word in ["run", "ps", "system", "completion", "--root"] {
        assert!(top.contains(&word.to_string()), "{word} in {top:?}");
    }
    for hidden in [
        "__holder",
        "__pause",
        "__container",
        "__probe-exec",
        "generate-man",
    ] {
        assert!(!top.contains(&hidden.to_string()), "{hidden} in {top:?}");
    }
    assert_eq!(
        bash_completes(&script, &["ps", "--format", ""]),
        ["table", "json"]
    );
    let df = bash_completes(&script, &["system", "df", "--"]);
    assert!(df.contains(&"--verbose".to_string()), "{df:?}");
    let pull = bash_completes(&script, &["pull", "--"]);
    assert!(!pull.iter().any(|o| o.contains("credentials")), "{pull:?}");
}

#[test]
fn zsh_and_fish_scripts_are_printed() {
    let env = TestEnv::new();
    let zsh = env.ok(["completion", "zsh"]);
    assert!(zsh.starts_with("#compdef minipod"), "{zsh}");
    let fish = env.ok(["completion", "fish"]);
    assert!(fish.contains("complete -c minipod"), "{fish}");
    for script in [&zsh, &fish] {
        assert!(!script.contains("__holder"));
    }
    // Where the shells are installed, their parsers accept the scripts.
    for (shell, script) in [("zsh", &zsh), ("fish", &fish)] {
        let path = env.work().join(format!("minipod.{shell}"));
        std::fs::write(&path, script).unwrap();
        if let Ok(out) = Command::new(shell).arg("-n").arg(&path).output() {
            assert!(out.status.success(), "{shell} -n: {}", stderr_of(&out));
        }
    }
    let err = env.fails(["completion", "tcsh"]);
    assert!(err.contains("bash, zsh, fish"), "{err}");
}

#[test]
fn man_pages_are_written_and_render() {
    let env = TestEnv::new();
    let dir = env.work().join("man/man1");
    env.ok(["generate-man", dir.to_str().unwrap()]);
    for page in [
        "minipod.1",
        "minipod-run.1",
        "minipod-ps.1",
        "minipod-system-df.1",
        "minipod-secret-create.1",
        "minipod-completion.1",
    ] {
        let out = Command::new("man")
            .args(["-l", "-P", "cat"])
            .arg(dir.join(page))
            .env("MANWIDTH", "80")
            .output()
            .expect("man (scripts/setup-host installs man-db)");
        assert!(out.status.success(), "man -l {page}: {}", stderr_of(&out));
        // Justified: words one space apart again.
        let text = stdout_of(&out)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{page}: {text}"
        );
        if page == "minipod-system-df.1" {
            assert!(text.contains("minipod system df"), "{text}");
            assert!(text.contains("--format"), "{text}");
        }
    }
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.contains("__")), "{names:?}");
}

/// scripts/install, as a user (not root: root's completions go to
/// /usr/share): binaries under the prefix, man pages where `man` finds them
/// from PATH, completions where bash-completion and fish look.
#[test]
fn the_install_script_installs_binaries_pages_and_completions() {
    let env = TestEnv::new();
    let home = env.work().join("home");
    let prefix = home.join(".local");
    std::fs::create_dir_all(&home).unwrap();
    env.give_to_user(&home);
    let user = test_user();
    let mut cmd = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install"));
    cmd.arg("--from")
        .arg(binary().parent().unwrap())
        .env("HOME", &home)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", prefix.join("bin").display()),
        )
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("BASH_COMPLETION_USER_DIR")
        .current_dir(&home);
    if user.switch {
        cmd.uid(user.uid).gid(user.gid);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        stdout_of(&out),
        stderr_of(&out)
    );

    for file in [
        "bin/minipod",
        "bin/minipod-supervisor",
        "share/man/man1/minipod.1",
        "share/man/man1/minipod-system-df.1",
        "share/bash-completion/completions/minipod",
        "share/zsh/site-functions/_minipod",
    ] {
        assert!(prefix.join(file).is_file(), "{file}: {}", stdout_of(&out));
    }
    assert!(home.join(".config/fish/completions/minipod.fish").is_file());
    // man finds the pages through PATH (man-db maps DIR/bin to DIR/share/man).
    let out = Command::new("man")
        .args(["-P", "cat", "minipod-run"])
        .env("HOME", &home)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", prefix.join("bin").display()),
        )
        .env_remove("MANPATH")
        .output()
        .unwrap();
    assert!(out.status.success(), "man minipod-run: {}", stderr_of(&out));
    assert!(stdout_of(&out).contains("exit-code-from"));
    let script = prefix.join("share/bash-completion/completions/minipod");
    assert!(bash_completes(&script, &["syst"]).contains(&"system".to_string()));
}

const CLAIMER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: lister}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: localhost/busybox
    command: [sleep, "30"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: lister-data}
"#;

/// Every listing command, with `--format json`.
const LISTS: [&[&str]; 6] = [
    &["ps", "-a"],
    &["images"],
    &["volume", "ls"],
    &["secret", "ls"],
    &["configmap", "ls"],
    &["system", "df"],
];

fn json_of(env: &TestEnv, list: &[&str]) -> serde_json::Value {
    let mut args = list.to_vec();
    args.extend(["--format", "json"]);
    let out = env.ok(&args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{list:?} --format json: {e}: {out}"))
}

#[test]
fn every_list_prints_json_empty_or_not() {
    let env = TestEnv::new();
    for list in &LISTS[..5] {
        assert_eq!(json_of(&env, list), serde_json::json!([]), "{list:?}");
    }
    let df = json_of(&env, &["system", "df"]);
    assert!(df.as_array().is_some_and(|rows| !rows.is_empty()), "{df}");

    let env = env_with_busybox();
    env.ok(["secret", "create", "s", "--from-literal", "k=v"]);
    env.ok(["configmap", "create", "c", "--from-literal", "k=v"]);
    let file = env.pod_file("lister", CLAIMER);
    env.ok(["run", "-d", file.to_str().unwrap()]);
    for list in &LISTS[..5] {
        let rows = json_of(&env, list);
        assert_eq!(rows.as_array().map(Vec::len), Some(1), "{list:?}: {rows}");
    }
    // -v: {"Summary": [the rows above], and each kind's items}.
    let df = json_of(&env, &["system", "df", "-v"]);
    assert!(
        df["Summary"]
            .as_array()
            .is_some_and(|rows| !rows.is_empty()),
        "{df}"
    );
    // A format minipod does not print is clap's error, exit 125.
    for list in LISTS {
        let mut args = list.to_vec();
        args.extend(["--format", "yaml"]);
        let err = env.fails(&args);
        assert!(err.contains("table, json"), "{list:?}: {err}");
    }
    env.ok(["rm", "-f", "lister"]);
}
