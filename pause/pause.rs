//! The pod's pause program: what a pause process runs once `minipod __pause`
//! has made and configured the pod's namespaces, for the rest of the pod's
//! life (podman's catatonit, in about 10 kB).
//!
//! `minipod __pause` does the set-up with the whole minipod binary, then
//! execs this program, which keeps the namespaces alive while using almost
//! no memory: no libc, no allocator, raw system calls only, built by
//! build.rs as a static `no_std` executable and embedded in minipod, which
//! runs it from a sealed memfd (so nothing in a pod can write to what
//! /proc/<pause>/exe shows).
//!
//! Usage (argv[1] picks the role):
//! - `hold [serve]`: keep the namespaces; with `serve`, first answer
//!   socket requests on fd 3 until it closes: one byte `t` (TCP) or `u`
//!   (UDP) in, one byte back, `k` with a new socket of the pod's netns
//!   attached (SCM_RIGHTS) or `e` without one (hostPort forwarding, see
//!   src/net/portfwd.rs).
//! - `link PID [serve]`: as `hold`, but once child PID is gone, exit with
//!   its status (128+N for signal N), so the supervisor, our parent, learns
//!   it: the link between the supervisor and the pod's PID 1 (shared PID
//!   namespace) or a container's main process, which lives in a PID
//!   namespace whose orphans would not go to the supervisor.
//! - `reap`: PID 1 of a shared PID namespace: reap every orphan, forever.
//!
//! minipod ends every command line with the directory of the pod or
//! container the process serves, which the program ignores: it is for `ps`.
//!
//! `hold` and `link` die with the supervisor: `minipod __pause` and
//! `__container` set SIGTERM as the parent-death signal, blocked, and both
//! survive the exec. `hold` then exits; `link` first kills its child with
//! SIGKILL and reaps it. Both keep the copy of the pod's lock they were
//! given (fd 7), so the lock is free only once the child is reaped, and
//! with it (as PID 1 of its namespace) everything that ran beside it: a
//! pod never looks removable while one of its processes still runs.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

const SYS_CLOSE: usize = 3;
const SYS_POLL: usize = 7;
const SYS_PIDFD_OPEN: usize = 434;
const SYS_RT_SIGPROCMASK: usize = 14;
const SYS_SOCKET: usize = 41;
const SYS_SENDMSG: usize = 46;
const SYS_RECVFROM: usize = 45;
const SYS_EXIT: usize = 60;
const SYS_WAIT4: usize = 61;
const SYS_PRCTL: usize = 157;
const SYS_RT_SIGTIMEDWAIT: usize = 128;
const SYS_KILL: usize = 62;

const AF_INET: usize = 2;
const SOCK_STREAM: usize = 1;
const SOCK_DGRAM: usize = 2;
const SOCK_CLOEXEC: usize = 0o2000000;
const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;
const PR_SET_DUMPABLE: usize = 4;
const SIG_BLOCK: usize = 0;
const SIGCHLD: usize = 17;
const SIGTERM: usize = 15;
const SIGKILL: usize = 9;
const WNOHANG: usize = 1;
const EINTR: isize = -4;
const POLLIN: i16 = 1;

// The kernel starts us with argc, argv[] on the stack; hand its address to
// `start` with the stack aligned as the C ABI wants.
global_asm!(
    ".globl _start",
    "_start:",
    "xor rbp, rbp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {start}",
    "ud2",
    start = sym start,
);

unsafe fn syscall(n: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for system call `n`.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
            in("r10") a[3], in("r8") a[4], in("r9") a[5],
            lateout("rcx") _, lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

fn exit(code: usize) -> ! {
    loop {
        // SAFETY: exit takes a plain integer and does not return.
        unsafe { syscall(SYS_EXIT, [code, 0, 0, 0, 0, 0]) };
    }
}

/// argv[i] as bytes, without its NUL.
fn arg(argv: *const *const u8, argc: usize, i: usize) -> &'static [u8] {
    if i >= argc {
        return b"";
    }
    // SAFETY: the kernel put argc valid NUL-terminated strings there.
    unsafe {
        let p = *argv.add(i);
        let mut n = 0;
        // Volatile, or the compiler turns the loop into a call to strlen,
        // which we do not have.
        while core::ptr::read_volatile(p.add(n)) != 0 {
            n += 1;
        }
        core::slice::from_raw_parts(p, n)
    }
}

fn parse_pid(s: &[u8]) -> Option<usize> {
    if s.is_empty() {
        return None;
    }
    let mut n = 0usize;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(usize::from(b - b'0'))?;
    }
    Some(n)
}

#[repr(C)]
struct IoVec {
    base: *const u8,
    len: usize,
}

#[repr(C)]
struct MsgHdr {
    name: usize,
    namelen: u32,
    iov: *const IoVec,
    iovlen: usize,
    control: *const u8,
    controllen: usize,
    flags: i32,
}

/// A cmsghdr carrying one fd, laid out as CMSG_SPACE(sizeof(int)) = 24.
#[repr(C)]
struct OneFd {
    len: usize,
    level: i32,
    kind: i32,
    fd: i32,
    pad: i32,
}

/// Sends one byte on fd 3, with `fd` attached when it is not negative.
fn reply(byte: u8, fd: isize) -> bool {
    let iov = IoVec {
        base: &byte,
        len: 1,
    };
    let cmsg = OneFd {
        len: 20,
        level: SOL_SOCKET,
        kind: SCM_RIGHTS,
        fd: fd as i32,
        pad: 0,
    };
    let msg = MsgHdr {
        name: 0,
        namelen: 0,
        iov: &iov,
        iovlen: 1,
        control: if fd >= 0 {
            (&cmsg as *const OneFd).cast()
        } else {
            core::ptr::null()
        },
        controllen: if fd >= 0 { 24 } else { 0 },
        flags: 0,
    };
    // SAFETY: msg and what it points to live across the call.
    let n = unsafe {
        syscall(
            SYS_SENDMSG,
            [3, (&msg as *const MsgHdr) as usize, 0, 0, 0, 0],
        )
    };
    n == 1
}

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

/// Hands out sockets of our netns on fd 3 until the supervisor goes away,
/// or, given the pidfd of the child we link (`pidfd` >= 0), until it ends.
fn serve_sockets(pidfd: isize) {
    loop {
        if pidfd >= 0 {
            let mut fds = [
                PollFd {
                    fd: 3,
                    events: POLLIN,
                    revents: 0,
                },
                PollFd {
                    fd: pidfd as i32,
                    events: POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: polls our two fds, no timeout.
            let n = unsafe {
                syscall(
                    SYS_POLL,
                    [fds.as_mut_ptr() as usize, 2, usize::MAX, 0, 0, 0],
                )
            };
            if n == EINTR {
                continue;
            }
            if n < 0 || fds[1].revents != 0 {
                break;
            }
        }
        let mut byte = 0u8;
        // SAFETY: reads one byte into `byte`.
        let n = unsafe {
            syscall(
                SYS_RECVFROM,
                [3, (&mut byte as *mut u8) as usize, 1, 0, 0, 0],
            )
        };
        if n == EINTR {
            continue;
        }
        if n != 1 {
            break;
        }
        let kind = if byte == b't' {
            SOCK_STREAM
        } else {
            SOCK_DGRAM
        };
        // SAFETY: socket takes integers.
        let sock = unsafe { syscall(SYS_SOCKET, [AF_INET, kind | SOCK_CLOEXEC, 0, 0, 0, 0]) };
        let sent = if sock >= 0 {
            let ok = reply(b'k', sock);
            // SAFETY: closes the socket we just made; the peer has its copy.
            unsafe { syscall(SYS_CLOSE, [sock as usize, 0, 0, 0, 0, 0]) };
            ok
        } else {
            reply(b'e', -1)
        };
        if !sent {
            break;
        }
    }
    // SAFETY: closes fd 3, which is ours.
    unsafe { syscall(SYS_CLOSE, [3, 0, 0, 0, 0, 0]) };
}

/// The signal mask of one signal, as rt_sigprocmask and rt_sigtimedwait
/// take it.
const fn bit(signal: usize) -> u64 {
    1 << (signal - 1)
}

/// Blocks the signals of `mask` (already blocked, for SIGTERM: the mask
/// survives the exec) and returns it, for rt_sigtimedwait.
fn block(mask: u64) -> u64 {
    // SAFETY: the mask outlives the call; sigsetsize is 8 on x86_64.
    unsafe {
        syscall(
            SYS_RT_SIGPROCMASK,
            [SIG_BLOCK, (&mask as *const u64) as usize, 0, 8, 0, 0],
        )
    };
    mask
}

/// Waits for a signal of `mask` and returns its number (negative: EINTR).
fn wait_signal(mask: &u64) -> isize {
    // SAFETY: waits for a signal in `mask`; no siginfo, no timeout.
    unsafe {
        syscall(
            SYS_RT_SIGTIMEDWAIT,
            [(mask as *const u64) as usize, 0, 0, 8, 0, 0],
        )
    }
}

/// PID 1 of a shared PID namespace: reaps whatever ends up with us.
fn reap_forever() -> ! {
    let mask = block(bit(SIGCHLD));
    loop {
        // SAFETY: wait4 with no status pointer.
        while unsafe { syscall(SYS_WAIT4, [usize::MAX, 0, WNOHANG, 0, 0, 0]) } > 0 {}
        wait_signal(&mask);
    }
}

/// Our child's status once it has ended: `pid`, or a negative errno.
fn wait_child(pid: usize, status: &mut i32, flags: usize) -> isize {
    // SAFETY: wait4 on our child into `status`.
    unsafe {
        syscall(
            SYS_WAIT4,
            [pid, (status as *mut i32) as usize, flags, 0, 0, 0],
        )
    }
}

/// Exits with the status of `pid` (our child) once it has ended; if the
/// supervisor dies first (SIGTERM), kills the child and exits once it is
/// reaped.
fn link(pid: usize) -> ! {
    let mask = block(bit(SIGCHLD) | bit(SIGTERM));
    loop {
        let mut status: i32 = 0;
        let r = wait_child(pid, &mut status, WNOHANG);
        if r < 0 && r != EINTR {
            exit(125);
        }
        if r > 0 {
            let signal = status & 0x7f;
            match signal {
                // Exited: the code is in the second byte.
                0 => exit(((status >> 8) & 0xff) as usize),
                _ => exit(128 + signal as usize),
            }
        }
        if wait_signal(&mask) == SIGTERM as isize {
            // SAFETY: kill takes integers; the child is ours, not reaped.
            unsafe { syscall(SYS_KILL, [pid, SIGKILL, 0, 0, 0, 0]) };
            while wait_child(pid, &mut status, 0) == EINTR {}
            exit(128 + SIGKILL);
        }
    }
}

/// Keeps the namespaces until the supervisor dies.
fn hold() -> ! {
    let mask = block(bit(SIGTERM));
    loop {
        if wait_signal(&mask) == SIGTERM as isize {
            exit(0);
        }
    }
}

unsafe extern "C" fn start(sp: *const usize) -> ! {
    // SAFETY: the kernel's initial stack: argc, then argv.
    let (argc, argv) = unsafe { (*sp, sp.add(1) as *const *const u8) };
    // Exec made us dumpable again: keep /proc/<us> out of the pod's reach
    // (containers may share our PID namespace).
    // (CVE-2019-5736): never run on without it.
    // SAFETY: prctl takes integers.
    if unsafe { syscall(SYS_PRCTL, [PR_SET_DUMPABLE, 0, 0, 0, 0, 0]) } != 0 {
        exit(125);
    }
    let role = arg(argv, argc, 1);
    match role {
        b"reap" => reap_forever(),
        b"hold" => {
            if arg(argv, argc, 2) == b"serve" {
                serve_sockets(-1);
            }
            hold()
        }
        b"link" => {
            let Some(pid) = parse_pid(arg(argv, argc, 2)) else {
                exit(125)
            };
            if arg(argv, argc, 3) == b"serve" {
                // Serve, but stop as soon as the child ends: the supervisor
                // must learn of it while it still holds fd 3.
                // SAFETY: pidfd_open takes integers.
                let pidfd = unsafe { syscall(SYS_PIDFD_OPEN, [pid, 0, 0, 0, 0, 0]) };
                serve_sockets(pidfd);
            }
            link(pid)
        }
        _ => exit(125),
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(125)
}

// Unused by the code above, but a program without libc must bring its own
// should the compiler emit a call.
#[unsafe(no_mangle)]
unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller owns n bytes at dst.
        unsafe { core::ptr::write_volatile(dst.add(i), c as u8) };
        i += 1;
    }
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller owns n bytes at both.
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i))) };
        i += 1;
    }
    dst
}
