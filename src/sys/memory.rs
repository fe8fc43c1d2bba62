//! Giving back what a long-lived process only needed to start.
//!
//! A supervisor stays beside its pod for the pod's life, but most of the
//! code it runs (reading the plan, starting the pause and the containers,
//! TLS for probes) runs once. Every page of its binary it touched stays
//! mapped, and each fault maps its neighbours too (the kernel's fault-around,
//! 64 kB): 2 MB of a 2.5 MB text segment resident per pod, though those
//! pages are one copy in the page cache for every supervisor. Unmapping the
//! binary's read-only mappings once the pod has started leaves resident only
//! what the steady state runs again (it faults back in from the page cache,
//! no disk read); `malloc_trim` returns the start's freed heap.

/// One mapping of `/proc/self/smaps`: its range, whether it may be written
/// or executed, the file it maps and how many of its pages are anonymous
/// (copied on write: relocated pointers live there).
#[derive(Debug, PartialEq)]
struct Mapping {
    start: usize,
    end: usize,
    writable: bool,
    path: String,
    anonymous_kb: u64,
}

/// Parses `/proc/self/smaps`.
fn mappings(smaps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            let perms = words.next().unwrap_or("");
            // offset, device, inode, then the path (which may hold spaces).
            let path = words.skip(3).collect::<Vec<_>>().join(" ");
            out.push(Mapping {
                start,
                end,
                writable: perms.contains('w'),
                path,
                anonymous_kb: 0,
            });
        } else if first == "Anonymous:"
            && let Some(m) = out.last_mut()
        {
            m.anonymous_kb = words.next().and_then(|k| k.parse().ok()).unwrap_or(0);
        }
    }
    out
}

/// The mappings that can be dropped and faulted back from the file: this
/// executable's, read-only, with no page of their own (a relocated RELRO
/// segment has them, and would lose its relocations).
fn droppable<'a>(maps: &'a [Mapping], exe: &str) -> impl Iterator<Item = &'a Mapping> {
    maps.iter().filter(move |m| {
        !m.writable
            && m.anonymous_kb == 0
            && (m.path == exe || m.path.strip_suffix(" (deleted)") == Some(exe))
    })
}

/// Drops the resident pages of this executable's read-only mappings and
/// trims the heap. Best effort: any failure leaves memory as it was.
pub fn shed_startup_pages() {
    // SAFETY: malloc_trim only returns free memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    let (Ok(exe), Ok(smaps)) = (
        std::fs::read_link("/proc/self/exe"),
        std::fs::read_to_string("/proc/self/smaps"),
    ) else {
        return;
    };
    let exe = exe.to_string_lossy();
    let exe = exe.strip_suffix(" (deleted)").unwrap_or(&exe);
    for m in droppable(&mappings(&smaps), exe) {
        // SAFETY: the range is a whole read-only mapping of our own file
        // with no anonymous page: MADV_DONTNEED only unmaps its pages, and
        // the next access maps the file's same bytes again.
        unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a00cd000 r--p 00000000 fe:00 10051746                   /usr/bin/minipod-supervisor
Size:                820 kB
Anonymous:             0 kB
55d0a00cd000-55d0a034f000 r-xp 000cd000 fe:00 10051746                   /usr/bin/minipod-supervisor
Anonymous:             0 kB
55d0a034f000-55d0a0360000 r--p 0034d000 fe:00 10051746                   /usr/bin/minipod-supervisor
Anonymous:            68 kB
55d0a0360000-55d0a0363000 rw-p 0035d000 fe:00 10051746                   /usr/bin/minipod-supervisor
Anonymous:            12 kB
55d0a1000000-55d0a1050000 rw-p 00000000 00:00 0                          [heap]
Anonymous:           280 kB
7f0000000000-7f0000001000 r-xp 00000000 fe:00 99                         /other lib.so
Anonymous:             0 kB
";

    #[test]
    fn only_our_clean_read_only_mappings_are_dropped() {
        let maps = mappings(SMAPS);
        assert_eq!(maps.len(), 6);
        assert_eq!(maps[5].path, "/other lib.so");
        assert_eq!(maps[2].anonymous_kb, 68);
        let dropped: Vec<_> = droppable(&maps, "/usr/bin/minipod-supervisor")
            .map(|m| m.start)
            .collect();
        // Text and read-only data; not the relocated RELRO, the data or
        // another file.
        assert_eq!(dropped, [0x55d0a0000000, 0x55d0a00cd000]);
    }

    #[test]
    fn our_own_smaps_parses_and_shedding_keeps_us_running() {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        assert!(mappings(&smaps).iter().any(|m| m.path == "[stack]"));
        shed_startup_pages();
        // The code after the madvise still runs, from the file.
        assert_eq!(mappings(SMAPS).len(), 6);
    }
}
