//! The one-line reports minipod's helpers send whoever started them over a
//! pipe: `pid N` once a pause or container is set up, `ok` once a detached
//! pod runs (supervisor to `run -d`), or `error MESSAGE`. A reader gets all
//! of them at the pipe's end (EOF).

/// What a helper reported, read at the pipe's end. A container's link
/// may send its pid and then an error (its exec failed): both are kept.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub pid: Option<i32>,
    pub ok: bool,
    pub error: Option<String>,
}

/// The `error` line for a message, which may span lines.
pub fn error_line(message: &str) -> String {
    format!("error {}\n", one_line(message))
}

/// Collapses a message's line breaks and runs of spaces, so it fits a
/// report line.
pub fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads a helper's report. Nothing at all means it died before it could
/// say.
pub fn parse(text: &str) -> Report {
    let mut report = Report::default();
    for line in text.lines() {
        match line.trim().split_once(' ').unwrap_or((line.trim(), "")) {
            ("error", msg) => report.error = Some(msg.to_string()),
            ("pid", pid) => report.pid = pid.trim().parse().ok(),
            ("ok", _) => report.ok = true,
            _ => {}
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_read_back() {
        assert_eq!(parse("pid 42\n").pid, Some(42));
        assert!(parse("ok\n").ok);
        assert_eq!(parse(""), Report::default());
        assert_eq!(parse("pid x\n").pid, None);
        let both = parse(&format!("pid 42\n{}", error_line("mount failed:\n  EPERM")));
        assert_eq!(both.pid, Some(42));
        assert_eq!(both.error.as_deref(), Some("mount failed: EPERM"));
        assert_eq!(one_line("a\nb  c\n"), "a b c");
    }
}
