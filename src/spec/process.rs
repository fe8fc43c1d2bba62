//! Kubernetes process semantics, applied once the image config is known:
//! argv from command/args and the image's Entrypoint/Cmd, the environment with
//! `$(VAR)` expansion, the working directory and the user.
//!
//! Fidelity notes (kubelet + containerd CRI):
//! - `$(VAR)` expansion is done by the kubelet, which does not know the image's
//!   Env: env values see only the container's own variables defined *earlier*
//!   in `env`, and command/args see the container's final `env` — never the
//!   image's Env. So `$(PATH)` with PATH only from the image stays `$(PATH)`,
//!   as on a cluster. The image's Env is merged afterwards by the runtime: image
//!   variables first, a container variable with the same name replacing the
//!   image's value in place, new ones appended in order.
//! - An empty `command`/`args` list counts as unset (the CRI sees no difference),
//!   and an image Entrypoint of `[""]` counts as no Entrypoint (containerd).

use std::fmt;

use super::expand::expand_with_env;
use super::plan::ContainerPlan;

/// What the runtime reads from the image config (OCI `config`), as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=VALUE` strings.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// The process to start, still with a symbolic user (see `resolve_user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPlan {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessError {
    NoCommand { container: String },
    UnknownUser { container: String, user: String },
    UnknownGroup { container: String, group: String },
    RunAsNonRoot { container: String, why: String },
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCommand { container } => write!(
                f,
                "container {container:?}: no command: the image has no Entrypoint or Cmd and \
                 the container sets no command; set command (and args) in the pod YAML"
            ),
            Self::UnknownUser { container, user } => write!(
                f,
                "container {container:?}: user {user:?} is not in the image's /etc/passwd; \
                 use a numeric uid or set securityContext.runAsUser"
            ),
            Self::UnknownGroup { container, group } => write!(
                f,
                "container {container:?}: group {group:?} is not in the image's /etc/group; \
                 use a numeric gid or set securityContext.runAsGroup"
            ),
            Self::RunAsNonRoot { container, why } => write!(
                f,
                "container {container:?}: runAsNonRoot is set but {why}; set \
                 securityContext.runAsUser to a non-zero uid"
            ),
        }
    }
}

impl std::error::Error for ProcessError {}

/// The argv: `command` replaces the Entrypoint and drops the Cmd; `args`
/// replaces the Cmd; neither gives Entrypoint + Cmd. No expansion here.
pub fn resolve_argv(
    container_name: &str,
    command: Option<&[String]>,
    args: Option<&[String]>,
    image: &ImageDefaults,
) -> Result<Vec<String>, ProcessError> {
    let command = command.filter(|c| !c.is_empty());
    let args = args.filter(|a| !a.is_empty());
    let entrypoint: &[String] = if image.entrypoint.len() == 1 && image.entrypoint[0].is_empty() {
        &[]
    } else {
        &image.entrypoint
    };
    let argv: Vec<String> = match (command, args) {
        (Some(c), Some(a)) => c.iter().chain(a).cloned().collect(),
        (Some(c), None) => c.to_vec(),
        (None, Some(a)) => entrypoint.iter().chain(a).cloned().collect(),
        (None, None) => entrypoint.iter().chain(&image.cmd).cloned().collect(),
    };
    if argv.is_empty() {
        return Err(ProcessError::NoCommand {
            container: container_name.to_string(),
        });
    }
    Ok(argv)
}

/// The container's `env` with each value expanded against the variables
/// defined before it (the kubelet's rule), later definitions of a name
/// replacing earlier ones in place.
pub fn expand_container_env(env: &[(String, String)]) -> Vec<(String, String)> {
    build_env(env.iter().map(|(k, v)| (k.clone(), v.clone(), true)))
}

/// The environment from `(name, value, expand)` in kubelet's order: a
/// value with `expand` (an `env[].value`) is expanded against the
/// variables before it; a name given again replaces the value in place.
pub fn build_env(
    entries: impl IntoIterator<Item = (String, String, bool)>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value, expand) in entries {
        let value = match expand {
            true => expand_with_env(&value, &out),
            false => value,
        };
        match out.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => out.push((name, value)),
        }
    }
    out
}

/// Image Env (`KEY=VALUE`) first, then `container_env` over it: same name
/// replaces in place, new names are appended.
pub fn merge_env(
    image_env: &[String],
    container_env: &[(String, String)],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: &str, v: &str| match out
        .iter_mut()
        .find(|(name, _)| name == k)
    {
        Some(slot) => slot.1 = v.to_string(),
        None => out.push((k.to_string(), v.to_string())),
    };
    for entry in image_env {
        let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        set(&mut out, k, v);
    }
    for (k, v) in container_env {
        set(&mut out, k, v);
    }
    out
}

/// Everything but the user: argv (expanded), env, cwd. `container_env`
/// is the container's environment, expanded (`config::resolve_env`).
pub fn resolve_process(
    container: &ContainerPlan,
    container_env: Vec<(String, String)>,
    image: &ImageDefaults,
) -> Result<ProcessPlan, ProcessError> {
    let expand_all = |list: &Option<Vec<String>>| -> Option<Vec<String>> {
        list.as_ref().map(|l| {
            l.iter()
                .map(|s| expand_with_env(s, &container_env))
                .collect()
        })
    };
    let command = expand_all(&container.command);
    let args = expand_all(&container.args);
    let argv = resolve_argv(&container.name, command.as_deref(), args.as_deref(), image)?;
    let env = merge_env(&image.env, &container_env);
    Ok(ProcessPlan {
        argv,
        env,
        cwd: resolve_working_dir(container.working_dir.as_deref(), image),
    })
}

/// `workingDir`, else the image's WorkingDir, else `/`.
pub fn resolve_working_dir(working_dir: Option<&str>, image: &ImageDefaults) -> String {
    working_dir
        .filter(|w| !w.is_empty())
        .or(image.working_dir.as_deref().filter(|w| !w.is_empty()))
        .unwrap_or("/")
        .to_string()
}

/// The resolved identity of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIds {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the groups of /etc/group that list the user by name.
    pub additional_gids: Vec<u32>,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let uid = f.next()?.trim().parse().ok()?;
        let gid = f.next()?.trim().parse().ok()?;
        (!name.starts_with('#')).then_some(PasswdEntry { name, uid, gid })
    })
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn group_entries(group: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    group.lines().filter_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        let gid = f.next()?.trim().parse().ok()?;
        let members = f
            .next()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        (!name.starts_with('#')).then_some(GroupEntry { name, gid, members })
    })
}

/// Resolves the user the container runs as.
///
/// Precedence (containerd CRI): `run_as_user` (the container's securityContext,
/// else the pod's; the plan already folded those) replaces the image's `User`
/// entirely; otherwise the image `User` is used, in the forms `uid`,
/// `uid:gid`, `name`, `name:group` (and mixes). When only a user is given, the
/// gid is that user's passwd entry's gid if it has one, else 0. `run_as_group`
/// overrides the gid. Names are looked up in the image's `/etc/passwd` and
/// `/etc/group` texts (`None`: the file does not exist).
/// With `run_as_non_root`, uid 0 is refused, and so is an image user given by
/// name when no runAsUser is set (the kubelet cannot verify it).
pub fn resolve_user(
    container: &ContainerPlan,
    image_user: Option<&str>,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<UserIds, ProcessError> {
    let passwd = passwd.unwrap_or("");
    let group = group.unwrap_or("");
    let cname = || container.name.clone();
    let image_user = image_user.map(str::trim).filter(|u| !u.is_empty());

    if container.run_as_non_root {
        match (container.run_as_user, image_user) {
            (Some(0), _) => {
                return Err(ProcessError::RunAsNonRoot {
                    container: cname(),
                    why: "runAsUser is 0".into(),
                });
            }
            (Some(_), _) => {}
            (None, None) => {
                return Err(ProcessError::RunAsNonRoot {
                    container: cname(),
                    why: "the image runs as root (it sets no User)".into(),
                });
            }
            (None, Some(u)) => {
                let user_part = u.split(':').next().unwrap_or(u);
                match user_part.parse::<u32>() {
                    Ok(0) => {
                        return Err(ProcessError::RunAsNonRoot {
                            container: cname(),
                            why: "the image's User is uid 0".into(),
                        });
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(ProcessError::RunAsNonRoot {
                            container: cname(),
                            why: format!(
                                "the image has a non-numeric User ({user_part}) that cannot be \
                                 verified as non-root"
                            ),
                        });
                    }
                }
            }
        }
    }

    let (uid, user_name, mut gid) = if let Some(uid) = container.run_as_user {
        let entry = passwd_entries(passwd).find(|e| e.uid == uid);
        (
            uid,
            entry.as_ref().map(|e| e.name.to_string()),
            entry.map(|e| e.gid).unwrap_or(0),
        )
    } else if let Some(spec) = image_user {
        let (user_part, group_part) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let (uid, name, passwd_gid) = match user_part.parse::<u32>() {
            Ok(uid) => {
                let entry = passwd_entries(passwd).find(|e| e.uid == uid);
                (
                    uid,
                    entry.as_ref().map(|e| e.name.to_string()),
                    entry.map(|e| e.gid).unwrap_or(0),
                )
            }
            Err(_) => {
                let entry = passwd_entries(passwd)
                    .find(|e| e.name == user_part)
                    .ok_or_else(|| ProcessError::UnknownUser {
                        container: cname(),
                        user: user_part.to_string(),
                    })?;
                (entry.uid, Some(entry.name.to_string()), entry.gid)
            }
        };
        let gid = match group_part {
            None => passwd_gid,
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => group_entries(group)
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| ProcessError::UnknownGroup {
                        container: cname(),
                        group: g.to_string(),
                    })?,
            },
        };
        (uid, name, gid)
    } else {
        let entry = passwd_entries(passwd).find(|e| e.uid == 0);
        (
            0,
            entry.as_ref().map(|e| e.name.to_string()),
            entry.map(|e| e.gid).unwrap_or(0),
        )
    };
    if let Some(g) = container.run_as_group {
        gid = g;
    }
    let mut additional_gids = Vec::new();
    if let Some(name) = user_name.as_ref().filter(|_| container.merge_image_groups) {
        for e in group_entries(group) {
            if e.members.contains(&name.as_str())
                && e.gid != gid
                && !additional_gids.contains(&e.gid)
            {
                additional_gids.push(e.gid);
            }
        }
    }
    // fsGroup and supplementalGroups, as containerd adds them.
    for g in &container.supplemental_groups {
        if !additional_gids.contains(g) {
            additional_gids.push(*g);
        }
    }
    Ok(UserIds {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::super::plan::PullPolicy;
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn image(ep: &[&str], cmd: &[&str]) -> ImageDefaults {
        ImageDefaults {
            entrypoint: s(ep),
            cmd: s(cmd),
            ..Default::default()
        }
    }

    fn container() -> ContainerPlan {
        ContainerPlan {
            name: "app".into(),
            image: "busybox".into(),
            pull_policy: PullPolicy::Always,
            command: None,
            args: None,
            env: vec![],
            env_from: vec![],
            working_dir: None,
            run_as_user: None,
            run_as_group: None,
            run_as_non_root: false,
            supplemental_groups: Vec::new(),
            merge_image_groups: true,
            security: Default::default(),
            ports: vec![],
            mounts: vec![],
            sidecar: false,
            probes: crate::spec::Probes::default(),
            post_start: None,
            pre_stop: None,
            stdin: false,
            stdin_once: false,
            tty: false,
        }
    }

    #[test]
    fn argv_combinations() {
        let img = image(&["/ep", "-x"], &["cmd1", "cmd2"]);
        let cmd = s(&["/bin/sh", "-c"]);
        let args = s(&["echo hi"]);
        let r = |c: Option<&[String]>, a: Option<&[String]>, i: &ImageDefaults| {
            resolve_argv("app", c, a, i)
        };
        // neither: Entrypoint + Cmd
        assert_eq!(
            r(None, None, &img).unwrap(),
            s(&["/ep", "-x", "cmd1", "cmd2"])
        );
        // command only: replaces Entrypoint, drops Cmd
        assert_eq!(r(Some(&cmd), None, &img).unwrap(), s(&["/bin/sh", "-c"]));
        // args only: Entrypoint + args
        assert_eq!(
            r(None, Some(&args), &img).unwrap(),
            s(&["/ep", "-x", "echo hi"])
        );
        // both
        assert_eq!(
            r(Some(&cmd), Some(&args), &img).unwrap(),
            s(&["/bin/sh", "-c", "echo hi"])
        );
        // empty lists count as unset
        assert_eq!(
            r(Some(&[]), Some(&[]), &img).unwrap(),
            s(&["/ep", "-x", "cmd1", "cmd2"])
        );
        // image with only Cmd
        assert_eq!(r(None, None, &image(&[], &["sh"])).unwrap(), s(&["sh"]));
        // args with an image without Entrypoint: args alone
        assert_eq!(
            r(None, Some(&args), &image(&[], &["sh"])).unwrap(),
            s(&["echo hi"])
        );
        // Entrypoint [""] is no Entrypoint
        assert_eq!(r(None, None, &image(&[""], &["sh"])).unwrap(), s(&["sh"]));
    }

    #[test]
    fn argv_empty_is_an_error_naming_the_container() {
        let err = resolve_argv("web", None, None, &image(&[], &[])).unwrap_err();
        assert_eq!(
            err,
            ProcessError::NoCommand {
                container: "web".into()
            }
        );
        let msg = err.to_string();
        assert!(
            msg.contains("\"web\"") && msg.contains("no command"),
            "{msg}"
        );
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn env_expansion_sees_only_earlier_variables() {
        let env = pairs(&[
            ("A", "a"),
            ("B", "$(A)-b"),
            ("C", "$(D)"), // forward reference: left as is
            ("D", "d"),
            ("E", "$$(A)"),
            ("F", "$(B)$(C)"),
        ]);
        assert_eq!(
            expand_container_env(&env),
            pairs(&[
                ("A", "a"),
                ("B", "a-b"),
                ("C", "$(D)"),
                ("D", "d"),
                ("E", "$(A)"),
                ("F", "a-b$(D)"),
            ])
        );
    }

    #[test]
    fn env_redefinition_keeps_first_position_and_sees_old_value() {
        let env = pairs(&[("A", "1"), ("B", "x"), ("A", "$(A)2")]);
        assert_eq!(
            expand_container_env(&env),
            pairs(&[("A", "12"), ("B", "x")])
        );
    }

    #[test]
    fn image_env_is_merged_but_not_visible_to_expansion() {
        let mut c = container();
        let env = pairs(&[("P", "$(PATH)"), ("HOME", "/home/app"), ("X", "1")]);
        c.command = Some(s(&["echo", "$(X)", "$(PATH)", "$(P)", "$$(X)", "$(Y)"]));
        c.args = Some(s(&["$(HOME)"]));
        let img = ImageDefaults {
            env: s(&["PATH=/usr/bin:/bin", "HOME=/root", "EMPTY"]),
            ..image(&["/ep"], &["c"])
        };
        let p = resolve_process(&c, expand_container_env(&env), &img).unwrap();
        assert_eq!(
            p.argv,
            s(&[
                "echo",
                "1",
                "$(PATH)",
                "$(PATH)",
                "$(X)",
                "$(Y)",
                "/home/app"
            ])
        );
        assert_eq!(
            p.env,
            pairs(&[
                ("PATH", "/usr/bin:/bin"),
                ("HOME", "/home/app"),
                ("EMPTY", ""),
                ("P", "$(PATH)"),
                ("X", "1"),
            ])
        );
        assert_eq!(p.cwd, "/");
    }

    #[test]
    fn command_sees_final_env_including_later_definitions() {
        let mut c = container();
        let env = pairs(&[("A", "$(B)"), ("B", "b")]);
        c.command = Some(s(&["$(A)", "$(B)"]));
        let p = resolve_process(&c, expand_container_env(&env), &image(&[], &[])).unwrap();
        // A's value kept its unresolved forward reference; command sees A and B.
        assert_eq!(p.argv, s(&["$(B)", "b"]));
    }

    #[test]
    fn nested_reference_is_left_alone() {
        let mut c = container();
        let env = pairs(&[("X", "Y"), ("Y", "y")]);
        c.command = Some(s(&["$($(X))", "$(Y"]));
        let p = resolve_process(&c, expand_container_env(&env), &image(&[], &[])).unwrap();
        assert_eq!(p.argv, s(&["$($(X))", "$(Y"]));
    }

    #[test]
    fn working_dir_defaults() {
        let mut img = image(&[], &["sh"]);
        assert_eq!(resolve_working_dir(None, &img), "/");
        img.working_dir = Some("/srv".into());
        assert_eq!(resolve_working_dir(None, &img), "/srv");
        assert_eq!(resolve_working_dir(Some("/work"), &img), "/work");
        img.working_dir = Some(String::new());
        assert_eq!(resolve_working_dir(None, &img), "/");
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          daemon:x:1:1::/:/bin/false\n\
                          # comment\n\
                          app:x:1000:1001:App:/home/app:/bin/sh\n\
                          broken line\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,app\napp:x:1001:\nstaff:x:50:app\n";

    fn user(c: &ContainerPlan, image_user: Option<&str>) -> Result<UserIds, ProcessError> {
        resolve_user(c, image_user, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn user_from_image_forms() {
        let c = container();
        let u = user(&c, None).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids.clone()), (0, 0, vec![10]));
        let u = user(&c, Some("app")).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids),
            (1000, 1001, vec![10, 50])
        );
        let u = user(&c, Some("1000")).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1001));
        let u = user(&c, Some("4242")).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (4242, 0, vec![]));
        let u = user(&c, Some("4242:77")).unwrap();
        assert_eq!((u.uid, u.gid), (4242, 77));
        let u = user(&c, Some("app:staff")).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        let u = user(&c, Some("1:wheel")).unwrap();
        assert_eq!((u.uid, u.gid), (1, 10));
        let u = user(&c, Some("daemon:5")).unwrap();
        assert_eq!((u.uid, u.gid), (1, 5));
    }

    #[test]
    fn unknown_names_are_errors_naming_them() {
        let c = container();
        let e = user(&c, Some("nobody")).unwrap_err();
        assert!(matches!(&e, ProcessError::UnknownUser { user, .. } if user == "nobody"));
        assert!(e.to_string().contains("\"nobody\""));
        let e = user(&c, Some("app:nogroup")).unwrap_err();
        assert!(matches!(&e, ProcessError::UnknownGroup { group, .. } if group == "nogroup"));
        // no /etc/passwd at all
        let e = resolve_user(&c, Some("app"), None, None).unwrap_err();
        assert!(matches!(e, ProcessError::UnknownUser { .. }));
        let u = resolve_user(&c, Some("7"), None, None).unwrap();
        assert_eq!((u.uid, u.gid), (7, 0));
    }

    #[test]
    fn security_context_overrides_image_user() {
        let mut c = container();
        c.run_as_user = Some(1000);
        let u = user(&c, Some("nobody-at-all:nogroup")).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1001));
        c.run_as_group = Some(3);
        let u = user(&c, Some("root")).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 3));
        let mut c = container();
        c.run_as_group = Some(9);
        let u = user(&c, Some("app")).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 9));
        c.run_as_user = Some(5555);
        let u = user(&c, None).unwrap();
        assert_eq!((u.uid, u.gid), (5555, 9));
    }

    #[test]
    fn run_as_non_root() {
        let mut c = container();
        c.run_as_non_root = true;
        assert!(matches!(
            user(&c, None),
            Err(ProcessError::RunAsNonRoot { .. })
        ));
        assert!(matches!(
            user(&c, Some("0:0")),
            Err(ProcessError::RunAsNonRoot { .. })
        ));
        assert!(matches!(
            user(&c, Some("app")),
            Err(ProcessError::RunAsNonRoot { .. })
        ));
        assert_eq!(user(&c, Some("1000")).unwrap().uid, 1000);
        c.run_as_user = Some(0);
        assert!(matches!(
            user(&c, Some("1000")),
            Err(ProcessError::RunAsNonRoot { .. })
        ));
        c.run_as_user = Some(12);
        assert_eq!(user(&c, None).unwrap().uid, 12);
    }
}
