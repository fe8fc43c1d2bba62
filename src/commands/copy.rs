//! `minipod cp POD[/CONTAINER]:PATH DEST` and `minipod cp SRC
//! POD[/CONTAINER]:PATH`: files out of and into a running container, with
//! docker's and podman's rules (`runtime::copy::place`); `-` is a tar
//! stream on stdout or stdin. CONTAINER may be left out when the pod has
//! one container (podman always wants one; a pod's only container is
//! unambiguous). The side in the container runs in a child that joined its
//! mount namespace (`runtime::container::in_container_files`), the host
//! side here as the caller, a tar stream between them.

use std::fs::File;
use std::os::fd::AsFd;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};

use crate::paths::Roots;
use crate::runtime::container::in_container_files;
use crate::runtime::copy::{self, DestState, PathArg};
use crate::runtime::state;

/// `POD[/CONTAINER]:PATH`, PATH absolute in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InContainer {
    pub pod: String,
    pub container: Option<String>,
    pub path: String,
}

/// What `cp` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copy {
    /// Out of a container to a host path, or `-` (stdout).
    Out { from: InContainer, to: String },
    /// From a host path, or `-` (stdin), into a container.
    In { from: String, to: InContainer },
}

/// One argument: a host path (`-`, or starting with `/` or `.`, or without
/// a colon: docker's rule, so `./a:b` is a host file) or a container's.
fn location(arg: &str) -> Result<Option<InContainer>> {
    if arg == "-" || arg.starts_with('/') || arg.starts_with('.') {
        return Ok(None);
    }
    let Some((left, path)) = arg.split_once(':') else {
        return Ok(None);
    };
    let (pod, container) = match left.split_once('/') {
        Some((pod, c)) => (pod, Some(c.to_string())),
        None => (left, None),
    };
    if pod.is_empty() || container.as_deref() == Some("") {
        bail!("{arg:?}: give POD/CONTAINER:PATH (or POD:PATH for a pod's only container)");
    }
    if path.is_empty() {
        bail!("{arg:?}: give the PATH in the container after the colon, e.g. {left}:/etc/hosts");
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        // As docker: relative to the container's root.
        format!("/{path}")
    };
    Ok(Some(InContainer {
        pod: pod.to_string(),
        container,
        path,
    }))
}

/// SRC and DEST → what to copy where (pure).
pub fn parse(src: &str, dest: &str) -> Result<Copy> {
    match (location(src)?, location(dest)?) {
        (Some(_), Some(_)) => {
            bail!("copying between containers is not supported: copy out to the host, then in")
        }
        (None, None) => bail!(
            "one of SRC and DEST must be in a container: POD/CONTAINER:PATH (a host path with a \
             colon is written ./NAME)"
        ),
        (Some(from), None) => Ok(Copy::Out {
            from,
            to: dest.to_string(),
        }),
        (None, Some(to)) => Ok(Copy::In {
            from: src.to_string(),
            to,
        }),
    }
}

/// The container meant: the one named, or the pod's only (app) container.
fn container_name(containers: &[&str], at: &InContainer) -> Result<String> {
    if let Some(c) = &at.container {
        return Ok(c.clone());
    }
    match containers {
        [only] => Ok(only.to_string()),
        many => Err(anyhow!(
            "pod {} has {} containers ({}): name one, as {}/{}:{}",
            at.pod,
            many.len(),
            many.join(", "),
            at.pod,
            many.first().copied().unwrap_or("CONTAINER"),
            at.path
        )),
    }
}

/// The container's main process (host pid) and how errors name it.
fn find_container(roots: &Roots, at: &InContainer) -> Result<(i32, String)> {
    let (paths, st) = state::find_pod(roots, &at.pod)?;
    let st = state::observed(&paths, st);
    let names: Vec<&str> = st.containers.iter().map(|c| c.name.as_str()).collect();
    let name = container_name(&names, at)?;
    let status = super::pod::running_container(&paths, &st, &at.pod, &name)?;
    Ok((status.pid, format!("container {name} of pod {}", at.pod)))
}

/// Our stdin or stdout as a file the child can use too.
fn std_file(fd: std::os::fd::BorrowedFd<'_>) -> Result<File> {
    Ok(File::from(fd.try_clone_to_owned()?))
}

/// The error to tell when both sides of a stream may have failed: the
/// sender's, unless it only found the receiver gone, then the receiver's.
pub fn first_cause(sender: Result<()>, receiver: Result<()>) -> Result<()> {
    match (sender, receiver) {
        (Err(e), _) if !copy::is_broken_pipe(&e) => Err(e),
        (_, Err(e)) => Err(e),
        (sent, Ok(())) => sent,
    }
}

pub fn cp(roots: &Roots, src: &str, dest: &str) -> Result<ExitCode> {
    match parse(src, dest)? {
        Copy::Out { from, to } => {
            let (pid, what) = find_container(roots, &from)?;
            let src = PathArg::parse(&from.path);
            let (host, inside) = if to == "-" {
                let out = std_file(std::io::stdout().as_fd())?;
                let sent =
                    in_container_files(roots, pid, move || copy::send(&src, out), || Ok(()))?;
                // The reader went away (`| head`): end quietly, as a
                // command killed by SIGPIPE would.
                if sent.1.as_ref().is_err_and(copy::is_broken_pipe) {
                    return Ok(ExitCode::from(141));
                }
                sent
            } else {
                let dest = PathArg::parse(&to);
                if let DestState::Missing {
                    parent_is_dir: false,
                } = copy::dest_state(&dest.path)
                {
                    // The same words `place` would use, before anything starts.
                    copy::place(copy::Kind::File, &src, &dest, copy::dest_state(&dest.path))
                        .map_err(|e| anyhow!(e))?;
                }
                let (read, write) = nix::unistd::pipe()?;
                let sender_src = src.clone();
                in_container_files(
                    roots,
                    pid,
                    move || copy::send(&sender_src, File::from(write)),
                    move || copy::receive(File::from(read), &src, &dest),
                )?
            };
            first_cause(inside.with_context(|| format!("in {what}")), host)?;
        }
        Copy::In { from, to } => {
            let (pid, what) = find_container(roots, &to)?;
            let dest = PathArg::parse(&to.path);
            let (host, inside) = if from == "-" {
                let input = std_file(std::io::stdin().as_fd())?;
                in_container_files(
                    roots,
                    pid,
                    move || copy::receive_stream(input, &dest.path),
                    || Ok(()),
                )?
            } else {
                let src = PathArg::parse(&from);
                copy::check_source(&src)?;
                let (read, write) = nix::unistd::pipe()?;
                let receiver_src = src.clone();
                in_container_files(
                    roots,
                    pid,
                    move || copy::receive(File::from(read), &receiver_src, &dest),
                    move || copy::send(&src, File::from(write)),
                )?
            };
            first_cause(host, inside.with_context(|| format!("in {what}")))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pod: &str, container: Option<&str>, path: &str) -> InContainer {
        InContainer {
            pod: pod.into(),
            container: container.map(String::from),
            path: path.into(),
        }
    }

    #[test]
    fn arguments_name_a_side_each() {
        assert_eq!(
            parse("web/nginx:/etc/nginx", "out").unwrap(),
            Copy::Out {
                from: at("web", Some("nginx"), "/etc/nginx"),
                to: "out".into()
            }
        );
        assert_eq!(
            parse("-", "web:tmp/x").unwrap(),
            Copy::In {
                from: "-".into(),
                to: at("web", None, "/tmp/x")
            }
        );
        assert_eq!(
            parse("./a:b", "p/c:/d").unwrap(),
            Copy::In {
                from: "./a:b".into(),
                to: at("p", Some("c"), "/d")
            }
        );
        assert!(format!("{}", parse("a", "b").unwrap_err()).contains("must be in a container"));
        assert!(
            format!("{}", parse("p/c:/x", "q/d:/y").unwrap_err()).contains("between containers")
        );
        assert!(format!("{}", parse("p/:/x", "y").unwrap_err()).contains("POD/CONTAINER:PATH"));
        assert!(format!("{}", parse("p/c:", "y").unwrap_err()).contains("PATH in the container"));
    }

    #[test]
    fn a_pods_only_container_need_not_be_named() {
        assert_eq!(
            container_name(&["web"], &at("p", None, "/x")).unwrap(),
            "web"
        );
        assert_eq!(
            container_name(&["a", "b"], &at("p", Some("b"), "/x")).unwrap(),
            "b"
        );
        let err = container_name(&["a", "b"], &at("p", None, "/x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod p has 2 containers (a, b): name one, as p/a:/x"
        );
    }

    #[test]
    fn the_senders_error_comes_first_unless_it_found_the_pipe_closed() {
        let pipe = || {
            Err(anyhow::Error::new(std::io::Error::from(
                std::io::ErrorKind::BrokenPipe,
            )))
        };
        let msg = |r: Result<()>| format!("{:#}", r.unwrap_err());
        assert_eq!(
            msg(first_cause(Err(anyhow!("no src")), Err(anyhow!("eof")))),
            "no src"
        );
        assert_eq!(msg(first_cause(pipe(), Err(anyhow!("no dir")))), "no dir");
        assert!(first_cause(Ok(()), Ok(())).is_ok());
        assert!(first_cause(pipe(), Ok(())).is_err());
    }
}
