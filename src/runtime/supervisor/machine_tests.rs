//! The supervisor's rules, one table or scenario each, with time passed in.

use super::*;
use Action::*;
use Role::*;

/// A machine and a clock: `at(s)` is `s` seconds after the start.
struct Pod {
    m: Machine,
    t0: Instant,
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A policy with kubelet's defaults (10 s backoff, 30 s grace).
fn policy(restart_policy: RestartPolicy) -> Policy {
    Policy {
        restart_policy,
        initial_backoff: secs(10),
        termination_grace: secs(30),
        exit_code_from: None,
        active_deadline: None,
        job: None,
    }
}

/// A Job's limits.
fn limits(backoff_limit: u32, active_deadline: Option<Duration>) -> Option<JobLimits> {
    Some(JobLimits {
        backoff_limit,
        active_deadline,
    })
}

impl Pod {
    fn new(restart_policy: RestartPolicy, roles: &[Role]) -> Pod {
        Pod::with(policy(restart_policy), roles)
    }

    fn with(policy: Policy, roles: &[Role]) -> Pod {
        Pod {
            m: Machine::new(policy, roles),
            t0: Instant::now(),
        }
    }

    fn at(&self, s: u64) -> Instant {
        self.t0 + secs(s)
    }

    fn begin(&mut self) -> Vec<Action> {
        let now = self.at(0);
        self.m.handle(Event::Begin { now })
    }

    fn started(&mut self, slots: &[usize], s: u64) -> Vec<Action> {
        let now = self.at(s);
        let slots = slots.iter().map(|&i| (i, Ok(()))).collect();
        self.m.handle(Event::Started { slots, now })
    }

    fn exited(&mut self, slot: usize, code: i32, s: u64) -> Vec<Action> {
        let now = self.at(s);
        self.m.handle(Event::Exited { slot, code, now })
    }

    fn tick(&mut self, s: u64) -> Vec<Action> {
        let now = self.at(s);
        self.m.handle(Event::Tick { now })
    }

    /// Begins the pod and answers each start at once, to the running pod.
    fn running(policy: RestartPolicy, roles: &[Role]) -> Pod {
        let mut pod = Pod::new(policy, roles);
        pod.run_all();
        pod
    }

    fn run_all(&mut self) {
        let mut actions = self.begin();
        while let Some(Start { slots, .. }) = actions.first().cloned() {
            actions = self.started(&slots, 0);
        }
    }
}

fn start(slots: &[usize]) -> Action {
    Start {
        slots: slots.to_vec(),
        restart: false,
    }
}

/// The pod failed because a container could not be set up.
fn setup_failed(message: &str) -> Action {
    PodFailed {
        failure: Failure::Setup(message.into()),
        code: MINIPOD_ERROR,
    }
}

fn restart(slot: usize) -> Action {
    Start {
        slots: vec![slot],
        restart: true,
    }
}

#[test]
fn restart_policy_times_exit_code_for_an_app_container() {
    // (policy, exit code, restarts?)
    let table = [
        (RestartPolicy::Always, 0, true),
        (RestartPolicy::Always, 1, true),
        (RestartPolicy::Always, 137, true),
        (RestartPolicy::OnFailure, 0, false),
        (RestartPolicy::OnFailure, 1, true),
        (RestartPolicy::OnFailure, 143, true),
        (RestartPolicy::Never, 0, false),
        (RestartPolicy::Never, 1, false),
    ];
    for (policy, code, restarts) in table {
        let mut pod = Pod::running(policy, &[App, App]);
        let actions = pod.exited(0, code, 5);
        if restarts {
            assert_eq!(
                actions,
                vec![BackOff {
                    slot: 0,
                    until: pod.at(15)
                }],
                "{policy:?} exit {code}"
            );
            assert_eq!(pod.m.next_deadline(), Some(pod.at(15)));
            assert_eq!(pod.tick(15), vec![restart(0)], "{policy:?} exit {code}");
        } else {
            assert!(actions.is_empty(), "{policy:?} exit {code}: {actions:?}");
            assert_eq!(pod.m.next_deadline(), None);
            // The other container ending ends the pod.
            let actions = pod.exited(1, 0, 6);
            let phase = if code == 0 {
                Phase::Succeeded
            } else {
                Phase::Failed
            };
            assert_eq!(
                actions,
                vec![Exit { code, phase }],
                "{policy:?} exit {code}"
            );
        }
    }
}

#[test]
fn init_containers_run_one_at_a_time_then_apps_together() {
    let mut pod = Pod::new(RestartPolicy::Always, &[Init, Init, App, App]);
    assert_eq!(pod.begin(), vec![start(&[0])]);
    assert!(pod.started(&[0], 1).is_empty());
    assert_eq!(pod.exited(0, 0, 2), vec![start(&[1])]);
    assert!(pod.started(&[1], 2).is_empty());
    assert_eq!(pod.exited(1, 0, 3), vec![start(&[2, 3])]);
    assert_eq!(pod.started(&[2, 3], 3), vec![PodRunning]);
    // A succeeded init container is not started again.
    assert!(pod.tick(100).is_empty());
}

#[test]
fn a_failed_init_container_under_each_policy() {
    for policy in [
        RestartPolicy::Always,
        RestartPolicy::OnFailure,
        RestartPolicy::Never,
    ] {
        let mut pod = Pod::new(policy, &[Init, App]);
        pod.begin();
        pod.started(&[0], 0);
        let actions = pod.exited(0, 3, 4);
        if policy == RestartPolicy::Never {
            // The pod fails with the init container's code; nothing else ran.
            assert_eq!(
                actions,
                vec![
                    PodFailed {
                        failure: Failure::InitFailed { slot: 0, code: 3 },
                        code: 3
                    },
                    Exit {
                        code: 3,
                        phase: Phase::Failed
                    }
                ],
                "{policy:?}"
            );
        } else {
            // Retried after the backoff; the app waits for it.
            assert_eq!(
                actions,
                vec![BackOff {
                    slot: 0,
                    until: pod.at(14)
                }],
                "{policy:?}"
            );
            assert_eq!(pod.tick(14), vec![restart(0)]);
            pod.started(&[0], 14);
            assert_eq!(pod.exited(0, 0, 15), vec![start(&[1])], "{policy:?}");
        }
    }
}

#[test]
fn backoff_doubles_to_five_minutes_and_starts_over_after_ten_minutes_of_running() {
    let mut pod = Pod::running(RestartPolicy::Always, &[App]);
    let mut now = 0;
    let mut delays = Vec::new();
    for _ in 0..7 {
        now += 1;
        let actions = pod.exited(0, 1, now);
        let [BackOff { until, .. }] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        let delay = until.duration_since(pod.at(now)).as_secs();
        delays.push(delay);
        now += delay;
        assert_eq!(pod.tick(now), vec![restart(0)]);
        pod.started(&[0], now);
    }
    assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
    // Ten minutes of running: the next delay is the first again.
    now += 600;
    let actions = pod.exited(0, 1, now);
    assert_eq!(
        actions,
        vec![BackOff {
            slot: 0,
            until: pod.at(now + 10)
        }]
    );
    // Just short of ten minutes: it goes on doubling.
    pod.tick(now + 10);
    pod.started(&[0], now + 10);
    let actions = pod.exited(0, 1, now + 10 + 599);
    assert_eq!(
        actions,
        vec![BackOff {
            slot: 0,
            until: pod.at(now + 10 + 599 + 20)
        }]
    );
}

#[test]
fn sidecars_start_in_order_and_always_restart() {
    let mut pod = Pod::new(RestartPolicy::Never, &[Sidecar, Init, Sidecar, App]);
    assert_eq!(pod.begin(), vec![start(&[0])]);
    // The next init container waits until the sidecar has started.
    assert_eq!(pod.started(&[0], 0), vec![start(&[1])]);
    pod.started(&[1], 1);
    assert_eq!(pod.exited(1, 0, 2), vec![start(&[2])]);
    assert_eq!(pod.started(&[2], 2), vec![start(&[3])]);
    assert_eq!(pod.started(&[3], 2), vec![PodRunning]);
    // Under restartPolicy Never, a sidecar still restarts, whatever its code.
    for code in [0, 1] {
        let actions = pod.exited(0, code, 10);
        assert!(
            matches!(actions.as_slice(), [BackOff { slot: 0, .. }]),
            "{actions:?}"
        );
        pod.tick(1000);
        pod.started(&[0], 1000);
    }
}

#[test]
fn sidecars_stop_after_the_apps_in_reverse_order() {
    let mut pod = Pod::running(RestartPolicy::Never, &[Sidecar, Sidecar, App, App]);
    assert!(pod.exited(2, 0, 5).is_empty());
    // The last app container exits: the sidecars are stopped, last first,
    // one at a time.
    assert_eq!(pod.exited(3, 0, 6), vec![Stop(1)]);
    assert!(pod.tick(7).is_empty());
    assert_eq!(pod.exited(1, 143, 8), vec![Stop(0)]);
    // A sidecar we stopped does not count against the pod.
    assert_eq!(
        pod.exited(0, 143, 9),
        vec![Exit {
            code: 0,
            phase: Phase::Succeeded
        }]
    );
}

#[test]
fn a_stop_signals_apps_first_and_kills_what_is_left_at_the_deadline() {
    let mut pod = Pod::running(RestartPolicy::Always, &[Sidecar, App, App]);
    assert_eq!(
        pod.m.handle(Event::StopRequested {
            grace: secs(5),
            now: pod.at(10)
        }),
        vec![Stop(1), Stop(2)]
    );
    assert_eq!(pod.m.next_deadline(), Some(pod.at(15)));
    // Stopped containers are not restarted, whatever the policy.
    assert!(pod.exited(1, 143, 11).is_empty());
    assert_eq!(pod.tick(15), vec![Kill(0), Kill(2)]);
    // Killed once, not at every tick.
    assert!(pod.tick(16).is_empty());
    assert_eq!(pod.m.next_deadline(), None);
    assert!(pod.exited(2, 137, 16).is_empty());
    assert_eq!(
        pod.exited(0, 137, 16),
        vec![Exit {
            code: 143,
            phase: Phase::Failed
        }]
    );
}

#[test]
fn a_second_interrupt_kills_at_once() {
    let mut pod = Pod::running(RestartPolicy::Always, &[App]);
    let now = pod.at(1);
    assert_eq!(pod.m.handle(Event::Interrupted { now }), vec![Stop(0)]);
    assert!(pod.m.is_stopping());
    assert_eq!(pod.m.next_deadline(), Some(pod.at(31)));
    let now = pod.at(2);
    assert_eq!(pod.m.handle(Event::Interrupted { now }), vec![Kill(0)]);
}

#[test]
fn stop_requested_while_stopping_only_shortens_the_grace() {
    let mut pod = Pod::running(RestartPolicy::Always, &[App]);
    let (grace, now) = (secs(60), pod.at(0));
    pod.m.handle(Event::StopRequested { grace, now });
    let (grace, now) = (secs(2), pod.at(1));
    pod.m.handle(Event::StopRequested { grace, now });
    assert_eq!(pod.m.next_deadline(), Some(pod.at(3)));
    let (grace, now) = (secs(100), pod.at(2));
    pod.m.handle(Event::StopRequested { grace, now });
    assert_eq!(pod.m.next_deadline(), Some(pod.at(3)));
}

#[test]
fn a_pending_restart_is_cancelled_by_a_stop() {
    let mut pod = Pod::running(RestartPolicy::Always, &[App, App]);
    pod.exited(0, 2, 1);
    let now = pod.at(2);
    assert_eq!(
        pod.m.handle(Event::Interrupted { now }),
        vec![CancelRestart(0), Stop(1)]
    );
    assert_eq!(
        pod.exited(1, 0, 3),
        vec![Exit {
            code: 2,
            phase: Phase::Failed
        }]
    );
}

#[test]
fn exit_code_from_ends_the_pod_with_that_containers_code() {
    // (policy, chosen's code, other's code when stopped, run's code)
    let table = [
        (RestartPolicy::Always, 0, 143, 0),
        (RestartPolicy::Always, 7, 143, 7),
        (RestartPolicy::OnFailure, 7, 0, 7),
        (RestartPolicy::Never, 0, 1, 0),
    ];
    for (policy, chosen_code, other_code, run_code) in table {
        let mut pod = Pod::with(
            Policy {
                restart_policy: policy,
                initial_backoff: secs(10),
                termination_grace: secs(30),
                exit_code_from: Some(1),
                active_deadline: None,
                job: None,
            },
            &[App, App],
        );
        pod.run_all();
        // The chosen container is never restarted; the others are stopped.
        assert_eq!(pod.exited(1, chosen_code, 5), vec![Stop(0)], "{policy:?}");
        let actions = pod.exited(0, other_code, 6);
        let [Exit { code, .. }] = actions.as_slice() else {
            panic!("{actions:?}")
        };
        assert_eq!(*code, run_code, "{policy:?}");
    }
}

#[test]
fn runs_code_is_the_first_failure_in_exit_order() {
    let mut pod = Pod::running(RestartPolicy::Never, &[App, App, App]);
    pod.exited(2, 0, 1);
    pod.exited(0, 4, 2);
    assert_eq!(
        pod.exited(1, 9, 3),
        vec![Exit {
            code: 4,
            phase: Phase::Failed
        }]
    );
}

#[test]
fn a_failed_first_start_aborts_and_a_later_one_fails_the_pod() {
    let mut pod = Pod::new(RestartPolicy::Always, &[App]);
    pod.begin();
    let now = pod.at(0);
    let slots = vec![(0, Err("no such file".to_string()))];
    assert_eq!(
        pod.m.handle(Event::Started { slots, now }),
        vec![Abort(Failure::Setup("no such file".into()))]
    );
    assert_eq!(pod.m.next_deadline(), None);

    let mut pod = Pod::new(RestartPolicy::Always, &[Init, App]);
    pod.begin();
    pod.started(&[0], 0);
    pod.exited(0, 0, 1);
    let now = pod.at(1);
    let message = "spawn failed".to_string();
    let actions = pod.m.handle(Event::StartFailed {
        slots: vec![1],
        message: message.clone(),
        now,
    });
    assert_eq!(
        actions,
        vec![
            PodFailed {
                failure: Failure::Setup(message),
                code: MINIPOD_ERROR
            },
            Exit {
                code: MINIPOD_ERROR,
                phase: Phase::Failed
            }
        ]
    );
}

#[test]
fn a_container_whose_setup_failed_is_stopped_with_the_pod() {
    let mut pod = Pod::new(RestartPolicy::Always, &[Init, App, App]);
    pod.begin();
    pod.started(&[0], 0);
    pod.exited(0, 0, 1);
    let now = pod.at(1);
    let slots = vec![(1, Ok(())), (2, Err("mount: EPERM".to_string()))];
    assert_eq!(
        pod.m.handle(Event::Started { slots, now }),
        vec![setup_failed("mount: EPERM"), Stop(1), Stop(2)]
    );
    pod.exited(2, 1, 2);
    assert_eq!(
        pod.exited(1, 143, 2),
        vec![Exit {
            code: MINIPOD_ERROR,
            phase: Phase::Failed
        }]
    );
}

#[test]
fn the_pause_exiting_fails_the_pod() {
    let mut pod = Pod::running(RestartPolicy::Always, &[App]);
    let now = pod.at(3);
    assert_eq!(
        pod.m.handle(Event::PauseExited { now }),
        vec![
            PodFailed {
                failure: Failure::PauseExited,
                code: MINIPOD_ERROR
            },
            Stop(0)
        ]
    );
}

#[test]
fn readiness_moves_both_ways_and_a_failed_liveness_probe_restarts() {
    let mut pod = Pod::running(RestartPolicy::Always, &[App]);
    let probe = |kind, success, s| Event::Probe {
        slot: 0,
        kind,
        success,
        grace: None,
        now: pod.at(s),
    };
    let (ready, unready) = (
        probe(ProbeKind::Readiness, true, 1),
        probe(ProbeKind::Readiness, false, 2),
    );
    let live_failed = probe(ProbeKind::Liveness, false, 3);
    assert_eq!(
        pod.m.handle(ready),
        vec![Ready {
            slot: 0,
            ready: true
        }]
    );
    assert_eq!(
        pod.m.handle(unready),
        vec![Ready {
            slot: 0,
            ready: false
        }]
    );
    assert_eq!(pod.m.handle(live_failed), vec![Stop(0)]);
    // Stopped by its probe, it restarts as the policy says.
    let actions = pod.exited(0, 143, 4);
    assert!(
        matches!(actions.as_slice(), [BackOff { slot: 0, .. }]),
        "{actions:?}"
    );

    let mut pod = Pod::running(RestartPolicy::Never, &[App]);
    let now = pod.at(1);
    let failed = Event::Probe {
        slot: 0,
        kind: ProbeKind::Startup,
        success: false,
        grace: None,
        now,
    };
    assert_eq!(pod.m.handle(failed), vec![Stop(0)]);
    assert_eq!(
        pod.exited(0, 143, 2),
        vec![Exit {
            code: 143,
            phase: Phase::Failed
        }]
    );
}

#[test]
fn nothing_restarts_once_the_pod_stops() {
    let mut pod = Pod::running(RestartPolicy::Always, &[Sidecar, App]);
    let (grace, now) = (secs(30), pod.at(1));
    assert_eq!(
        pod.m.handle(Event::StopRequested { grace, now }),
        vec![Stop(1)]
    );
    // The sidecar ends on its own while the app is stopping: it stays down.
    assert!(pod.exited(0, 1, 2).is_empty());
    assert_eq!(pod.m.next_deadline(), Some(pod.at(31)));
    assert_eq!(
        pod.exited(1, 0, 3),
        vec![Exit {
            code: 1,
            phase: Phase::Failed
        }]
    );
}

#[test]
fn one_start_at_a_time_so_a_failed_one_stops_the_rest() {
    let mut pod = Pod::running(RestartPolicy::Always, &[App, App, App]);
    pod.exited(0, 1, 1);
    pod.exited(1, 1, 1);
    // Both restarts are due: the second waits for the first's answer.
    assert_eq!(pod.tick(11), vec![restart(0)]);
    assert_eq!(pod.started(&[0], 11), vec![restart(1)]);
    assert!(pod.started(&[1], 11).is_empty());

    pod.exited(0, 1, 12);
    pod.exited(1, 1, 12);
    assert_eq!(pod.tick(40), vec![restart(0)]);
    // The first restart's set-up fails: the pod stops, and the other
    // restart is never started.
    let now = pod.at(40);
    let slots = vec![(0, Err("mount: EPERM".to_string()))];
    assert_eq!(
        pod.m.handle(Event::Started { slots, now }),
        vec![
            setup_failed("mount: EPERM"),
            CancelRestart(1),
            Stop(0),
            Stop(2)
        ]
    );
}

fn job(policy: RestartPolicy, backoff_limit: u32, roles: &[Role]) -> Pod {
    let mut pod = Pod::with(
        Policy {
            job: limits(backoff_limit, None),
            ..self::policy(policy)
        },
        roles,
    );
    pod.run_all();
    pod
}

#[test]
fn job_on_failure_fails_once_the_restarts_reach_the_backoff_limit() {
    // As the Job controller's pastBackoffLimitOnFailure: restarts >= limit.
    let mut pod = job(RestartPolicy::OnFailure, 2, &[App]);
    // The first failure restarts (1 restart < 2).
    assert_eq!(
        pod.exited(0, 3, 1),
        vec![BackOff {
            slot: 0,
            until: pod.at(11)
        }]
    );
    assert_eq!(pod.tick(11), vec![restart(0)]);
    pod.started(&[0], 11);
    // The second would be the second restart: the Job fails, with that
    // container's code.
    assert_eq!(
        pod.exited(0, 4, 12),
        vec![
            PodFailed {
                failure: Failure::BackoffLimitExceeded {
                    failures: 2,
                    code: 4
                },
                code: 4
            },
            Exit {
                code: 4,
                phase: Phase::Failed
            }
        ]
    );
    // A limit of 0 allows no restart at all.
    let mut pod = job(RestartPolicy::OnFailure, 0, &[App]);
    let actions = pod.exited(0, 3, 1);
    assert!(matches!(actions[0], PodFailed { .. }), "{actions:?}");
}

#[test]
fn a_stop_while_a_failed_job_attempt_ends_ends_the_pod() {
    // Never, with a sidecar that outlives the failed app.
    let mut pod = job(RestartPolicy::Never, 3, &[Sidecar, App]);
    assert_eq!(pod.exited(1, 2, 1), vec![Stop(0)]);
    // Ctrl-C (a second signal while stopping kills): no retry follows.
    assert_eq!(
        pod.m.handle(Event::Interrupted { now: pod.at(2) }),
        vec![Kill(0)]
    );
    let actions = pod.exited(0, 137, 2);
    assert!(matches!(actions.as_slice(), [Exit { .. }]), "{actions:?}");
}

#[test]
fn a_job_pods_deadline_fails_the_attempt_and_the_job_tries_again() {
    let mut pod = Pod::with(
        Policy {
            active_deadline: Some(secs(5)),
            job: limits(1, None),
            ..policy(RestartPolicy::Never)
        },
        &[App],
    );
    pod.run_all();
    assert_eq!(pod.tick(5), vec![Stop(0)]);
    assert_eq!(
        pod.exited(0, 143, 6),
        vec![RetryPod {
            failures: 1,
            until: pod.at(16)
        }]
    );
    assert_eq!(pod.tick(16), vec![restart(0)]);
    pod.started(&[0], 16);
    // The new attempt has a deadline of its own.
    assert_eq!(pod.m.next_deadline(), Some(pod.at(21)));
}

#[test]
fn a_jobs_deadline_counts_from_its_start_and_fails_it() {
    let mut pod = Pod::with(
        Policy {
            job: limits(6, Some(secs(20))),
            ..policy(RestartPolicy::OnFailure)
        },
        &[App],
    );
    pod.run_all();
    pod.exited(0, 1, 5);
    pod.tick(15);
    pod.started(&[0], 15);
    let actions = pod.tick(20);
    assert_eq!(
        actions,
        vec![
            PodFailed {
                failure: Failure::DeadlineExceeded,
                code: 1
            },
            Stop(0)
        ]
    );
}

#[test]
fn job_that_succeeds_after_failures_exits_zero() {
    let mut pod = job(RestartPolicy::OnFailure, 6, &[App]);
    pod.exited(0, 1, 1);
    pod.tick(11);
    pod.started(&[0], 11);
    assert_eq!(
        pod.exited(0, 0, 12),
        vec![Exit {
            code: 0,
            phase: Phase::Succeeded
        }]
    );
}

#[test]
fn job_never_runs_a_failed_attempt_again_from_the_first_init_container() {
    let mut pod = job(RestartPolicy::Never, 1, &[Init, App]);
    assert_eq!(pod.exited(0, 0, 0), vec![start(&[1])]);
    pod.started(&[1], 0);
    // The app fails: the attempt ends, and a retry is due after the backoff.
    assert_eq!(
        pod.exited(1, 2, 1),
        vec![RetryPod {
            failures: 1,
            until: pod.at(11)
        }]
    );
    assert_eq!(pod.m.next_deadline(), Some(pod.at(11)));
    assert!(pod.tick(5).is_empty());
    // The retry starts over with the init container, counted as a restart.
    assert_eq!(pod.tick(11), vec![restart(0)]);
    pod.started(&[0], 11);
    assert_eq!(pod.exited(0, 0, 12), vec![restart(1)]);
    pod.started(&[1], 12);
    // The second failure is past backoffLimit 1.
    assert_eq!(
        pod.exited(1, 5, 13),
        vec![
            PodFailed {
                failure: Failure::BackoffLimitExceeded {
                    failures: 2,
                    code: 5
                },
                code: 5
            },
            Exit {
                code: 5,
                phase: Phase::Failed
            }
        ]
    );
}

#[test]
fn job_never_with_a_failed_init_container_retries_instead_of_failing() {
    let mut pod = job(RestartPolicy::Never, 0, &[Init, App]);
    let mut pod2 = job(RestartPolicy::Never, 3, &[Init, App]);
    // Limit 0: the first failure fails the Job.
    let actions = pod.exited(0, 7, 1);
    assert!(
        actions.contains(&PodFailed {
            failure: Failure::BackoffLimitExceeded {
                failures: 1,
                code: 7
            },
            code: 7
        }),
        "{actions:?}"
    );
    // Limit 3: retried.
    let actions = pod2.exited(0, 7, 1);
    assert_eq!(
        actions,
        vec![RetryPod {
            failures: 1,
            until: pod2.at(11)
        }]
    );
}

#[test]
fn active_deadline_fails_the_pod_and_stops_it() {
    let mut pod = Pod::with(
        Policy {
            active_deadline: Some(secs(20)),
            ..policy(RestartPolicy::Always)
        },
        &[App],
    );
    pod.run_all();
    assert_eq!(pod.m.next_deadline(), Some(pod.at(20)));
    assert!(pod.tick(19).is_empty());
    assert_eq!(
        pod.tick(20),
        vec![
            PodFailed {
                failure: Failure::DeadlineExceeded,
                code: 1
            },
            Stop(0)
        ]
    );
    assert_eq!(
        pod.exited(0, 143, 21),
        vec![Exit {
            code: 1,
            phase: Phase::Failed
        }]
    );
}

#[test]
fn a_container_a_probe_stopped_is_killed_after_the_probes_grace_period() {
    let mut pod = Pod::running(RestartPolicy::Always, &[App, App]);
    let failed = Event::Probe {
        slot: 0,
        kind: ProbeKind::Liveness,
        success: false,
        grace: Some(secs(2)),
        now: pod.at(1),
    };
    assert_eq!(pod.m.handle(failed), vec![Stop(0)]);
    assert_eq!(pod.m.next_deadline(), Some(pod.at(3)));
    assert!(pod.tick(2).is_empty());
    assert_eq!(pod.tick(3), vec![Kill(0)]);
    // Its exit restarts it, as the policy says.
    let actions = pod.exited(0, 137, 3);
    assert!(
        matches!(actions.as_slice(), [BackOff { slot: 0, .. }]),
        "{actions:?}"
    );
}

#[test]
fn a_sidecar_with_a_startup_probe_holds_the_next_init_container_until_it_passes() {
    let mut pod = Pod::with(policy(RestartPolicy::Always), &[Sidecar, Init, App]);
    pod.m = Machine::new(policy(RestartPolicy::Always), &[Sidecar, Init, App])
        .with_startup_probes(&[0]);
    assert_eq!(pod.begin(), vec![start(&[0])]);
    // Started, but its startup probe has not passed: the init container waits.
    assert!(pod.started(&[0], 0).is_empty());
    let passed = Event::Probe {
        slot: 0,
        kind: ProbeKind::Startup,
        success: true,
        grace: None,
        now: pod.at(2),
    };
    assert_eq!(pod.m.handle(passed), vec![start(&[1])]);
    // Without a startup probe, started is enough.
    let mut pod = Pod::new(RestartPolicy::Always, &[Sidecar, Init, App]);
    pod.begin();
    assert_eq!(pod.started(&[0], 0), vec![start(&[1])]);
}

#[test]
fn a_container_its_liveness_probe_stopped_restarts_under_on_failure_even_after_exit_0() {
    let mut pod = Pod::running(RestartPolicy::OnFailure, &[App]);
    let failed = Event::Probe {
        slot: 0,
        kind: ProbeKind::Liveness,
        success: false,
        grace: None,
        now: pod.at(1),
    };
    assert_eq!(pod.m.handle(failed), vec![Stop(0)]);
    // It handled SIGTERM and exited 0: still a failure, so it restarts.
    let actions = pod.exited(0, 0, 2);
    assert!(
        matches!(actions.as_slice(), [BackOff { slot: 0, .. }]),
        "{actions:?}"
    );
}

#[test]
fn an_eviction_fails_the_pod_and_kills_without_grace() {
    let mut pod = Pod::running(RestartPolicy::Always, &[App]);
    let now = pod.at(5);
    let actions = pod.m.handle(Event::Lost {
        reason: "Evicted",
        message: "Usage of EmptyDir volume \"v\" exceeds the limit \"1Mi\".".into(),
        now,
    });
    assert_eq!(
        actions[0],
        PodFailed {
            failure: Failure::Lost {
                reason: "Evicted",
                message: "Usage of EmptyDir volume \"v\" exceeds the limit \"1Mi\".".into()
            },
            code: 1
        }
    );
    // No grace: killed at once, not restarted.
    assert!(actions.contains(&Kill(0)), "{actions:?}");
    assert_eq!(
        pod.exited(0, 137, 5),
        vec![Exit {
            code: 1,
            phase: Phase::Failed
        }]
    );
}
