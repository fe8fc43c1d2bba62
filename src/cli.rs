//! The command line (docs/ARCHITECTURE.md "The command line"), in podman's
//! habits: the clap definitions, logging, and the mapping from the parsed
//! arguments to the commands of `commands` and their options.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::{CommandFactory, Parser, Subcommand};

use crate::commands::pod::{ExecOptions, LogsOptions, RunOptions};
use crate::commands::{self, image::PullOptions};
use crate::paths::Roots;
use crate::spec::objects::ObjectKind;
use crate::userns;

#[derive(Parser)]
#[command(
    name = "minipod",
    version,
    about = "Run Kubernetes Pod YAML rootless, without a cluster"
)]
struct Cli {
    /// Where images, volumes, writable layers and logs are stored [default:
    /// $XDG_DATA_HOME/minipod]
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Where pod state lives [default: $XDG_RUNTIME_DIR/minipod]
    #[arg(long, global = true, value_name = "DIR")]
    runroot: Option<PathBuf>,
    /// error, warn, info, debug or trace
    #[arg(long, global = true, value_name = "LEVEL", default_value = "warn")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Run in the background: return once every container has started
    #[arg(short, long)]
    detach: bool,
    /// Return when NAME exits, stop the others, and exit with NAME's code
    #[arg(long, value_name = "NAME")]
    exit_code_from: Option<String>,
    /// always, missing or never: overrides every container's imagePullPolicy
    #[arg(long, value_name = "POLICY")]
    pull: Option<String>,
    /// Replace the pods of the same workloads (stop and remove them first)
    #[arg(long)]
    replace: bool,
    /// Check the files and say what would run, creating nothing (exit 0
    /// when it would run, 125 when not)
    #[arg(long)]
    dry_run: bool,
    /// With -d: `ready` returns once every pod is Ready (exit 125 with the
    /// last probe failure when it will not be, leaving the pods running)
    #[arg(long, value_name = "CONDITION", value_parser = ["ready"])]
    wait: Option<String>,
    /// How long --wait waits: 30s, 5m, 2h [default: 5m]
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// The first restart delay of a crashing container, doubling up to 5
    /// minutes (kubelet: 10)
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    restart_backoff: f64,
    /// A YAML file of ConfigMaps and Secrets the pods may use (after the
    /// files' own, before the store's); repeatable
    #[arg(long = "configmap", value_name = "FILE")]
    configmaps: Vec<String>,
    /// Run the input's one Pod or workload under this metadata.name (a
    /// workload's pods are named from it), so one YAML runs many times
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Publish CONTAINERPORT on HOSTPORT, overriding the YAML's hostPort
    /// for that port (no HOSTPORT: a free one); repeatable
    #[arg(long, value_name = "[[HOSTIP:][HOSTPORT]:]CONTAINERPORT[/PROTO]")]
    publish: Vec<String>,
    /// Give every hostPort of the YAML a free host port (`minipod port`
    /// tells which)
    #[arg(short = 'P', long)]
    publish_all_random: bool,
    // Interactive containers (run -it).
    /// Attach the terminal's input to the one container with `stdin: true`
    /// (foreground only); Ctrl-P Ctrl-Q detaches, the pod runs on
    #[arg(short, long)]
    interactive: bool,
    /// Attach the terminal to the one container with `stdin: true`, its
    /// output only without -i (the YAML's `tty` gives it a terminal)
    #[arg(short, long)]
    tty: bool,
    /// The keys that detach from the container with -i/-t: comma-separated,
    /// each one character or ctrl-X; "" for none
    #[arg(long, value_name = "KEYS", default_value = crate::runtime::attach::DEFAULT_DETACH_KEYS)]
    detach_keys: String,
    /// Add a label to every pod run (over the YAML's label of that key), as
    /// podman's --label; `ps --filter label=KEY=VALUE` finds them; repeatable
    #[arg(long = "label", value_name = "KEY[=VALUE]")]
    labels: Vec<String>,
    /// Kubernetes YAML: Pods and workloads (Deployment, StatefulSet, Job,
    /// …) with their ConfigMaps and Secrets; - for stdin
    #[arg(value_name = "FILE", required = true)]
    files: Vec<String>,
}

/// Where `secret create` and `configmap create` read the values (kubectl's flags).
#[derive(clap::Args)]
struct SourceArgs {
    /// KEY=VALUE; repeatable
    #[arg(long, value_name = "KEY=VALUE")]
    from_literal: Vec<String>,
    /// A file under its base name or KEY, or each regular file of a
    /// directory under its own name; repeatable
    #[arg(long, value_name = "[KEY=]PATH")]
    from_file: Vec<String>,
    /// KEY=VALUE lines (# comments; a KEY alone takes minipod's environment
    /// variable); repeatable
    #[arg(long, value_name = "PATH")]
    from_env_file: Vec<String>,
}

/// What `generate` writes (issue 17: `generate kube`).
#[derive(Subcommand)]
enum GenerateCommand {
    /// Print the Pod YAML of a pod as it runs, defaults filled in; `minipod
    /// run` runs it again as the same pod
    Kube {
        pod: String,
        /// Write it to FILE instead of stdout
        #[arg(short, long, value_name = "FILE")]
        filename: Option<PathBuf>,
    },
}

/// The Services' commands.
#[derive(Subcommand)]
enum ServiceCommand {
    /// List the Services `run` registered: virtual IP, ports, endpoints
    #[command(alias = "list")]
    Ls {
        /// table or json
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
}

/// The named volumes' commands.
#[derive(Subcommand)]
enum VolumeCommand {
    /// List the volumes
    #[command(alias = "list")]
    Ls {
        /// table or json
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Show them as JSON: record, mountpoint, pods using them
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove them with their data (refused while a pod uses one)
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every volume no running pod uses
    Prune {
        /// Do not ask (needed when stdin is not a terminal)
        #[arg(short, long)]
        force: bool,
    },
}

/// `minipod system …`: minipod as a whole.
#[derive(Subcommand)]
enum SystemCommand {
    /// Show the disk space images, layers, pods, logs and volumes use
    Df {
        /// table or json
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// List each image, layer, pod, log and volume too
        #[arg(short, long)]
        verbose: bool,
    },
    /// Stop and remove every pod, image, layer, volume, Secret and
    /// ConfigMap of the roots, and the user-namespace holder: what to run
    /// instead of `rm -rf`, which cannot remove files of subordinate ids
    Reset {
        /// Do not ask first
        #[arg(short, long)]
        force: bool,
    },
}

/// The store's commands, the same for Secrets and ConfigMaps.
#[derive(Subcommand)]
enum ObjectCommand {
    /// Add one to the store (a name in use is refused)
    Create {
        name: String,
        /// A Secret's type [default: Opaque]
        #[arg(long = "type", value_name = "TYPE")]
        type_: Option<String>,
        #[command(flatten)]
        sources: SourceArgs,
    },
    /// List the store's (keys, never values)
    #[command(alias = "list")]
    Ls {
        /// table or json
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Show them as JSON: keys and sizes, never values
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove them from the store
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Load an image: oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE
    Load {
        /// Name the image NAME[:TAG] instead of what the source says
        #[arg(long, value_name = "NAME[:TAG]")]
        name: Option<String>,
        source: String,
    },
    /// Make a one-layer image from a root filesystem (tar, maybe compressed, or directory)
    Import {
        rootfs: PathBuf,
        #[arg(value_name = "NAME[:TAG]")]
        name: String,
    },
    /// Pull an image from a registry: NAME[:TAG] or NAME@sha256:DIGEST
    Pull {
        /// Directory with CA certificates (*.crt) and client certificates
        /// (*.cert with *.key) for the registry [default: certs.d dirs]
        #[arg(long, value_name = "DIR")]
        cert_dir: Option<PathBuf>,
        /// Check the registry's TLS certificate; false also allows plain HTTP
        #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
              num_args = 0..=1, require_equals = true, default_missing_value = "true")]
        tls_verify: bool,
        /// Credentials file (podman's auth.json format) [default: podman's and docker's]
        #[arg(long, value_name = "FILE")]
        authfile: Option<PathBuf>,
        /// No progress bars
        #[arg(short, long)]
        quiet: bool,
        /// A pod's registry credentials (its imagePullSecrets) as JSON on
        /// stdin, from `run -d`: never written to a file
        #[arg(long, hide = true)]
        credentials_stdin: bool,
        image: String,
    },
    /// List images
    Images {
        /// table or json
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Remove an image and whatever no other image uses
    Rmi {
        /// Remove all names of an image given by ID
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Run the pods of Kubernetes YAML files (Pods and workloads; - for stdin)
    Run(RunArgs),
    /// The local store's Secrets, which pods read when no file gives the name
    Secret {
        #[command(subcommand)]
        command: ObjectCommand,
    },
    /// The local store's ConfigMaps, which pods read when no file gives the name
    Configmap {
        #[command(subcommand)]
        command: ObjectCommand,
    },
    /// Named volumes: what persistentVolumeClaims mount
    Volume {
        #[command(subcommand)]
        command: VolumeCommand,
    },
    /// Services: the virtual IPs `run` gives its files' Service documents
    #[command(alias = "svc")]
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
    },
    /// Minipod as a whole: disk usage, reset
    System {
        #[command(subcommand)]
        command: SystemCommand,
    },
    /// Run a command (default: $SHELL) as root of minipod's user namespace,
    /// where files of layers and volumes have the owners containers see
    Unshare {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// List pods (running ones; -a for all)
    Ps {
        #[arg(short, long)]
        all: bool,
        /// table or json
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// Only pods with this label (`label=KEY` or `label=KEY=VALUE`, as
        /// podman's ps); repeatable: pods matching all
        #[arg(long = "filter", value_name = "label=KEY[=VALUE]")]
        filters: Vec<String>,
    },
    /// Show a pod's container logs (all containers, prefixed, without CONTAINER)
    Logs {
        /// Keep printing new lines until the pod ends
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines of each container
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// Prefix each line with its time
        #[arg(long)]
        timestamps: bool,
        /// Only lines since a time (RFC 3339) or a duration ago (10s, 5m, 2h)
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// The pod's events (probe failures), not its containers' output
        #[arg(long)]
        events: bool,
        pod: String,
        container: Option<String>,
    },
    /// Run a command in a running container
    Exec {
        /// Keep stdin open
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a terminal
        #[arg(short, long)]
        tty: bool,
        pod: String,
        container: String,
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Attach the terminal to a running container: its output live, and
    /// its stdin when it has `stdin: true`; Ctrl-P Ctrl-Q detaches
    Attach {
        /// Do not send our input to the container
        #[arg(long)]
        no_stdin: bool,
        /// The keys that detach: comma-separated, each one character or
        /// ctrl-X; "" for none
        #[arg(long, value_name = "KEYS", default_value = crate::runtime::attach::DEFAULT_DETACH_KEYS)]
        detach_keys: String,
        pod: String,
        container: String,
    },
    /// List the processes of a pod's running containers
    Top {
        pod: String,
        /// table or json
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    // --- generate kube and cp (issue 17 item 5) ---
    /// Write something made from a pod: `generate kube POD`
    Generate {
        #[command(subcommand)]
        command: GenerateCommand,
    },
    /// Copy files out of or into a running container: `cp POD/CONTAINER:PATH
    /// DEST`, `cp SRC POD/CONTAINER:PATH` (`-` for a tar stream on
    /// stdout/stdin; CONTAINER may be left out when the pod has one)
    Cp {
        #[arg(value_name = "SRC")]
        src: String,
        #[arg(value_name = "DEST")]
        dest: String,
    },
    // --- end generate kube and cp ---
    /// Stop a pod: its containers' stop signal, SIGKILL after the grace period
    Stop {
        /// Grace period in seconds [default: the pod's terminationGracePeriodSeconds]
        #[arg(short = 't', long = "time", value_name = "SECONDS")]
        time: Option<f64>,
        pod: String,
    },
    /// Remove pods (-f stops running ones first)
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Show a pod as Kubernetes would: the spec and its status (JSON); or
    /// `service/NAME`, a Service and its endpoints
    Inspect {
        #[arg(value_name = "POD|service/NAME")]
        pod: String,
    },
    /// List a running pod's published ports (80/tcp -> 0.0.0.0:34567), or
    /// the host address of one
    Port {
        pod: String,
        /// CONTAINERPORT[/tcp|udp]: print only its host address
        #[arg(value_name = "CONTAINERPORT[/PROTO]")]
        port: Option<String>,
        /// table or json
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Wait until a pod reaches a condition (default: stopped, printing its exit code)
    Wait {
        /// running, stopped or ready (the pod's Ready condition)
        #[arg(long, default_value = "stopped")]
        condition: String,
        /// Give up (exit 125) after this long: 30s, 5m, 2h
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        pod: String,
    },
    /// Stop and remove the pods a YAML file started, or a pod by name
    Down {
        #[arg(value_name = "FILE|POD")]
        target: String,
        /// Also remove the volumes the file's claims made (its
        /// PersistentVolumeClaims, volumeClaimTemplates and claims without
        /// a document)
        #[arg(long)]
        volumes: bool,
    },
    /// Print a shell's completion script: `source <(minipod completion bash)`
    Completion {
        #[arg(value_parser = ["bash", "zsh", "fish"])]
        shell: String,
    },
    /// Write the man pages (minipod.1, minipod-run.1, …) into DIR, made
    /// from these definitions; scripts/install runs it
    #[command(name = "generate-man", hide = true)]
    GenerateMan {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    #[command(name = "__holder", hide = true)]
    Holder { subnet: String, runroot: PathBuf },
    #[command(name = "__pause", hide = true)]
    Pause,
    /// The container init, started by the pod supervisor (runtime::container).
    #[command(name = "__container", hide = true)]
    Container,
    /// An exec probe's command in a container, started by its supervisor
    /// (already in the user namespace): the container's main process, the
    /// command (the container's config comes on fd 4).
    #[command(name = "__probe-exec", hide = true)]
    ProbeExec {
        pid: i32,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

pub fn run() -> Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            e.print()?;
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => {
            let _ = e.print();
            return Ok(ExitCode::from(crate::EXIT_MINIPOD_ERROR));
        }
    };
    init_logging(&cli.log_level)?;
    let roots = Roots::resolve(cli.root, cli.runroot);
    match cli.command {
        Command::Holder { subnet, runroot } => {
            userns::holder::holder_main(&subnet, &runroot).map(|()| ExitCode::SUCCESS)
        }
        Command::Pause => {
            let config = crate::runtime::contract::read_passed_config("__pause")?;
            crate::runtime::pause::pause_main(config).map(|()| ExitCode::SUCCESS)
        }
        Command::Run(args) => commands::pod::run(
            &roots,
            RunOptions {
                detach: args.detach,
                exit_code_from: args.exit_code_from,
                pull: args.pull,
                replace: args.replace,
                restart_backoff: args.restart_backoff,
                dry_run: args.dry_run,
                wait_ready: args.wait.is_some(),
                timeout: args.timeout,
                configmaps: args.configmaps,
                files: args.files,
                name: args.name,
                publish: args.publish,
                publish_all_random: args.publish_all_random,
                interactive: args.interactive,
                tty: args.tty,
                detach_keys: args.detach_keys,
                labels: args.labels,
            },
        ),
        Command::Secret { command } => object_command(&roots, ObjectKind::Secret, command),
        Command::Configmap { command } => object_command(&roots, ObjectKind::ConfigMap, command),
        Command::Ps {
            all,
            format,
            filters,
        } => commands::pod::ps(&roots, all, &format, &filters),
        Command::Logs {
            follow,
            tail,
            timestamps,
            since,
            events,
            pod,
            container,
        } => commands::pod::logs(
            &roots,
            &pod,
            LogsOptions {
                container,
                follow,
                tail,
                timestamps,
                since,
                events,
            },
        ),
        Command::Exec {
            interactive,
            tty,
            pod,
            container,
            command,
        } => commands::pod::exec(
            &roots,
            &pod,
            ExecOptions {
                container,
                command,
                interactive,
                tty,
            },
        ),
        Command::Attach {
            no_stdin,
            detach_keys,
            pod,
            container,
        } => commands::pod::attach(&roots, &pod, &container, !no_stdin, &detach_keys),
        Command::Generate {
            command: GenerateCommand::Kube { pod, filename },
        } => commands::generate::kube(&roots, &pod, filename.as_deref()),
        Command::Cp { src, dest } => commands::copy::cp(&roots, &src, &dest),
        Command::Stop { time, pod } => commands::pod::stop(&roots, &pod, time),
        Command::Rm { force, pods } => commands::pod::rm(&roots, &pods, force),
        Command::Inspect { pod } => commands::pod::inspect(&roots, &pod),
        Command::Port { pod, port, format } => {
            commands::pod::port(&roots, &pod, port.as_deref(), &format)
        }
        Command::Wait {
            condition,
            timeout,
            pod,
        } => commands::pod::wait(&roots, &pod, &condition, timeout.as_deref()),
        Command::Down { target, volumes } => commands::pod::down(&roots, &target, volumes),
        Command::System { command } => system_command(&roots, command),
        Command::Top { pod, format } => commands::top::top(&roots, &pod, &format),
        Command::Unshare { command } => commands::unshare::unshare(&roots, &command),
        Command::Service { command } => match command {
            ServiceCommand::Ls { format } => commands::service::ls(&roots, &format),
        },
        Command::Volume { command } => match command {
            VolumeCommand::Ls { format } => commands::volume::ls(&roots, &format),
            VolumeCommand::Inspect { names } => commands::volume::inspect(&roots, &names),
            VolumeCommand::Rm { names } => commands::volume::rm(&roots, &names),
            VolumeCommand::Prune { force } => commands::volume::prune(&roots, force),
        },
        Command::Container => Ok(crate::runtime::container::container_main()),
        Command::ProbeExec { pid, command } => commands::pod::probe_exec(pid, command),
        Command::Load { name, source } => commands::image::load(&roots, name.as_deref(), &source),
        Command::Import { rootfs, name } => commands::image::import(&roots, &rootfs, &name),
        Command::Pull {
            cert_dir,
            tls_verify,
            authfile,
            quiet,
            credentials_stdin,
            image,
        } => commands::image::pull(
            &roots,
            &image,
            PullOptions {
                tls_verify_off: !tls_verify,
                cert_dir,
                authfile,
                progress: !quiet,
            },
            credentials_stdin,
        ),
        Command::Completion { shell } => completion(&shell),
        Command::GenerateMan { dir } => generate_man(&dir),
        Command::Images { format } => commands::image::images(&roots, &format),
        Command::Rmi { force, images } => commands::image::rmi(&roots, force, &images),
    }
}

/// `minipod completion SHELL`: the script on stdout, as `podman completion`.
fn completion(shell: &str) -> Result<ExitCode> {
    let shell = match shell {
        "bash" => clap_complete::Shell::Bash,
        "zsh" => clap_complete::Shell::Zsh,
        "fish" => clap_complete::Shell::Fish,
        other => anyhow::bail!("completion {other:?}: use bash, zsh or fish"),
    };
    let mut cmd = without_hidden(&Cli::command());
    clap_complete::generate(shell, &mut cmd, "minipod", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// The command tree without its hidden subcommands and arguments:
/// clap_complete offers them otherwise (`__holder`, `--credentials-stdin`),
/// and they are minipod's own plumbing, not for a user to type.
fn without_hidden(cmd: &clap::Command) -> clap::Command {
    let mut out = clap::Command::new(cmd.get_name().to_owned())
        .visible_aliases(cmd.get_visible_aliases().map(str::to_owned))
        .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned())
        .subcommands(
            cmd.get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(without_hidden),
        );
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        out = out.version(version.to_owned());
    }
    out
}

/// `minipod generate-man DIR`: minipod.1 and one page per subcommand
/// (minipod-system-df.1, …), hidden ones left out.
fn generate_man(dir: &std::path::Path) -> Result<ExitCode> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating {}: name a folder you can write", dir.display()))?;
    // Built, each subcommand knows its page's name (minipod-system-df) and
    // its synopsis (minipod system df).
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    write_man_pages(&cmd, dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// One page for `cmd` and each of its visible subcommands, all footed
/// "minipod VERSION" (clap_mangen's own `generate_to` puts the subcommand's
/// bare name there).
fn write_man_pages(cmd: &clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|c| !c.is_hide_set()) {
        write_man_pages(sub, dir)?;
    }
    clap_mangen::Man::new(cmd.clone())
        .source(format!("minipod {}", env!("CARGO_PKG_VERSION")))
        .manual("minipod manual")
        .generate_to(dir)?;
    Ok(())
}

fn system_command(roots: &Roots, command: SystemCommand) -> Result<ExitCode> {
    match command {
        SystemCommand::Reset { force } => commands::system::reset(roots, force),
        SystemCommand::Df { format, verbose } => {
            commands::system::df(roots, commands::system::DfOptions { format, verbose })
        }
    }
}

fn object_command(roots: &Roots, kind: ObjectKind, command: ObjectCommand) -> Result<ExitCode> {
    use commands::objects;
    match command {
        ObjectCommand::Create {
            name,
            type_,
            sources,
        } => {
            if type_.is_some() && kind == ObjectKind::ConfigMap {
                anyhow::bail!("--type is for secrets; a ConfigMap has no type");
            }
            objects::create(
                roots,
                kind,
                &name,
                objects::CreateOptions {
                    type_,
                    literals: sources.from_literal,
                    files: sources.from_file,
                    env_files: sources.from_env_file,
                },
            )
        }
        ObjectCommand::Ls { format } => objects::ls(roots, kind, &format),
        ObjectCommand::Inspect { names } => objects::inspect(roots, kind, &names),
        ObjectCommand::Rm { names } => objects::rm(roots, kind, &names),
    }
}

fn init_logging(level: &str) -> Result<()> {
    let level: tracing::Level = level
        .parse()
        .map_err(|_| anyhow!("--log-level {level:?}: use error, warn, info, debug or trace"))?;
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    /// Every (sub)command name and long option of a tree, as "a b --c".
    fn names(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        let path = format!("{prefix}{}", cmd.get_name());
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                out.push(format!("{path} --{long}"));
            }
        }
        out.push(path.clone());
        for sub in cmd.get_subcommands() {
            names(sub, &format!("{path} "), out);
        }
    }

    #[test]
    fn completion_tree_leaves_out_hidden_parts_only() {
        let full = Cli::command();
        let visible = without_hidden(&full);
        let (mut all, mut shown) = (vec![], vec![]);
        names(&full, "", &mut all);
        names(&visible, "", &mut shown);
        for hidden in [
            "minipod __holder",
            "minipod __pause",
            "minipod __container",
            "minipod __probe-exec",
            "minipod generate-man",
            "minipod pull --credentials-stdin",
        ] {
            assert!(all.contains(&hidden.to_string()), "{hidden}");
            assert!(!shown.contains(&hidden.to_string()), "{hidden}");
        }
        // Everything else is kept, global options included.
        all.retain(|n| {
            !n.contains("__") && !n.contains("generate-man") && !n.contains("credentials")
        });
        assert_eq!(all, shown);
        for kept in [
            "minipod --root",
            "minipod system df --format",
            "minipod completion",
        ] {
            assert!(shown.contains(&kept.to_string()), "{kept}");
        }
        visible.debug_assert();
    }

    #[test]
    fn bash_script_offers_no_hidden_command() {
        let mut cmd = without_hidden(&Cli::command());
        let mut script = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "minipod", &mut script);
        let script = String::from_utf8(script).unwrap();
        assert!(script.contains("complete -F _minipod"));
        assert!(
            script.contains("minipod__subcmd__system__subcmd__df"),
            "nested subcommands are completed"
        );
        assert!(
            script.contains("table json"),
            "--format's values are offered"
        );
        for hidden in [
            "__holder",
            "__pause",
            "__container",
            "probe-exec",
            "generate-man",
        ] {
            assert!(!script.contains(hidden), "{hidden}");
        }
    }

    #[test]
    fn man_pages_one_per_visible_command() {
        let dir = tempfile::tempdir().unwrap();
        generate_man(dir.path()).unwrap();
        let mut pages: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        pages.sort();
        for page in [
            "minipod.1",
            "minipod-run.1",
            "minipod-system-df.1",
            "minipod-secret-create.1",
        ] {
            assert!(pages.contains(&page.to_string()), "{page} in {pages:?}");
        }
        assert!(
            !pages
                .iter()
                .any(|p| p.contains("__") || p.contains("generate-man") || p.contains("help")),
            "{pages:?}"
        );
        let run = std::fs::read_to_string(dir.path().join("minipod-run.1")).unwrap();
        assert!(run.contains("exit\\-code\\-from"), "{run}");
    }
}
