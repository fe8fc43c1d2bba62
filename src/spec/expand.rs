//! `$(VAR)` expansion exactly as the kubelet does it
//! (k8s.io/kubernetes/third_party/forked/golang/expansion/expand.go).
//!
//! - `$(NAME)` is replaced by the value of NAME when the mapping knows it,
//!   and left as written (`$(NAME)`) when it does not;
//! - `$$` is an escaped `$`;
//! - `$(` with no closing `)` is left as is;
//! - `$` followed by any other character is left as is, and so is a `$` at the end.
//!
//! The name is everything up to the first `)`: `$($(X))` looks up `$(X`, which
//! is never defined, so it stays as written.

/// Expands `input` with `lookup`; `lookup` returns `None` for an undefined name.
pub fn expand<'a, F>(input: &str, lookup: F) -> String
where
    F: Fn(&str) -> Option<&'a str>,
{
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match bytes[cursor + 1] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest[1..].find(')') {
                    Some(close) => {
                        let name = &rest[1..1 + close];
                        match lookup(name) {
                            Some(value) => out.push_str(value),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        close + 2
                    }
                    None => {
                        // Incomplete reference: keep "$(" and go on scanning after it.
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // Not a reference: keep the '$' and the next character.
                    let ch = rest.chars().next().expect("non-empty");
                    out.push('$');
                    out.push(ch);
                    ch.len_utf8()
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < input.len() {
        out.push_str(&input[checkpoint..]);
    }
    out
}

/// Expands against an ordered list of `(name, value)` pairs (last definition wins).
pub fn expand_with_env(input: &str, env: &[(String, String)]) -> String {
    expand(input, |name| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<(String, String)> {
        [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("EMPTY", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn x(input: &str) -> String {
        expand_with_env(input, &env())
    }

    #[test]
    fn cases_from_kubernetes_expand_test() {
        // The table of expand_test.go, in the same order.
        let cases = [
            ("$(VAR_A)", "A"),
            ("___$(VAR_B)___", "___B___"),
            ("___$(VAR_C)", "___C"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)-1", "A-1"),
            ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
            ("$$(VAR_A)", "$(VAR_A)"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("foo\\$(VAR_C)bar", "foo\\Cbar"),
            ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
            ("foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
            ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$(VAR_REPLACE", "$(VAR_REPLACE"),
            ("$(VAR_A)-$(VAR_B", "A-$(VAR_B"),
            ("$(VAR_A)$(VAR_B)$(", "AB$("),
            ("$(VAR_A)$(VAR_B)$(VAR_C)", "ABC"),
            ("$(VAR_A)$(VAR_B)$(VAR_C)$(", "ABC$("),
            ("$(EMPTY)", ""),
            ("$(UNKNOWN)", "$(UNKNOWN)"),
            ("$()", "$()"),
            ("$", "$"),
            ("$$", "$"),
            ("$$$", "$$"),
            ("$$$$", "$$"),
            ("$$$$$", "$$$"),
            ("$x", "$x"),
            ("$VAR_A", "$VAR_A"),
            ("${VAR_A}", "${VAR_A}"),
            ("$$$(VAR_A)", "$A"),
            ("$$$$(VAR_A)", "$$(VAR_A)"),
            ("$(VAR_A)$", "A$"),
            ("$(VAR_A)$$", "A$"),
            ("$($(VAR_A))", "$($(VAR_A))"),
            ("$(", "$("),
            ("$($", "$($"),
            ("plain text", "plain text"),
            ("", ""),
            ("$é$(VAR_A)", "$éA"),
            ("é$(VAR_B)é", "éBé"),
        ];
        for (input, want) in cases {
            assert_eq!(x(input), want, "input {input:?}");
        }
    }

    #[test]
    fn last_definition_wins() {
        let env = vec![
            ("A".to_string(), "1".to_string()),
            ("A".to_string(), "2".to_string()),
        ];
        assert_eq!(expand_with_env("$(A)", &env), "2");
    }
}
