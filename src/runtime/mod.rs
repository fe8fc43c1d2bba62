//! Running pods, one module per process or concern:
//! - `launch`: `minipod run`'s half — works a pod out, writes its files and
//!   hands the supervisor its plan;
//! - `supervisor`: `minipod-supervisor`, one per running pod — its pure
//!   decisions (`supervisor::machine`) and the shell that carries them out;
//! - `pause`: `minipod __pause`, which creates and holds a pod's namespaces;
//! - `container`: `minipod __container` (a container's set-up and its link)
//!   and `minipod exec`;
//! - `attach`: `minipod attach` and `run -it`, a client of a container's
//!   console in its supervisor;
//! - `copy`: `minipod cp`'s tar stream, each side's half and where it lands;
//! - `contract`: what these processes hand each other (plans, configs, fds,
//!   reports);
//! - `pod_config`: `run`'s half of ConfigMaps, Secrets and the downward API
//!   (resolved before anything is created); `config_volumes`: the pause's tmpfs for configMap, secret, downwardAPI
//!   and projected volumes; `ownership`: fsGroup's ownership of volumes;
//! - `services`: the Service table and its rules, recomputed (`sync`);
//! - `prepare` (images and configs for a pod's containers), `state` (a
//!   pod's recorded state and files), `logs`, `etc_files`.

pub mod attach;
pub mod config_volumes;
pub mod container;
pub mod contract;
pub mod copy;
pub mod etc_files;
pub mod launch;
pub mod logs;
mod ownership;
pub mod pause;
mod pod_config;
pub mod prepare;
mod service_env;
pub mod services;
pub mod state;
pub mod supervisor;
