//! A Sieve tokenizer (RFC 5228 §8.1), enough to edit users' scripts safely: every token keeps
//! its byte span in the original text, so an edit touches only what it means to and leaves
//! comments, layout and everything it does not understand as the user wrote it.

use std::ops::Range;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An identifier: a command or test name.
    Ident,
    /// A tagged argument such as `:copy`.
    Tag,
    /// A number, with its optional K/M/G quantifier.
    Number,
    /// A quoted or multi-line (`text:`) string; the value is decoded.
    Str(String),
    /// One of `; , ( ) [ ] { }`.
    Punct(char),
}

/// One token and where it sits in the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: Kind,
    /// Its bytes in the script.
    pub span: Range<usize>,
}

/// The tokens of a script, comments and white space left out; an error names the line.
pub fn tokens(src: &str) -> Result<Vec<Token>, String> {
    let b = src.as_bytes();
    let line_of = |at: usize| src[..at].bytes().filter(|&c| c == b'\n').count() + 1;
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = src[i + 2..]
                    .find("*/")
                    .ok_or_else(|| format!("line {}: a comment is never closed", line_of(i)))?;
                i += 2 + end + 2;
            }
            b'"' => {
                let mut value = Vec::new();
                i += 1;
                loop {
                    match b.get(i) {
                        None => {
                            return Err(format!(
                                "line {}: a string is never closed",
                                line_of(start)
                            ));
                        }
                        Some(b'"') => break,
                        Some(b'\\') if i + 1 < b.len() => {
                            value.push(b[i + 1]);
                            i += 2;
                        }
                        Some(&x) => {
                            value.push(x);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Token {
                    kind: Kind::Str(String::from_utf8_lossy(&value).into_owned()),
                    span: start..i,
                });
            }
            b':' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Token {
                    kind: Kind::Tag,
                    span: start..i,
                });
            }
            b'0'..=b'9' => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if i < b.len() && matches!(b[i].to_ascii_uppercase(), b'K' | b'M' | b'G') {
                    i += 1;
                }
                out.push(Token {
                    kind: Kind::Number,
                    span: start..i,
                });
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                // `text:` opens a multi-line string that ends at a line holding only ".".
                if src[start..i].eq_ignore_ascii_case("text") && b.get(i) == Some(&b':') {
                    let body = src[i + 1..]
                        .find('\n')
                        .map(|n| i + 1 + n + 1)
                        .ok_or_else(|| format!("line {}: text: without a body", line_of(i)))?;
                    let mut value = String::new();
                    let mut at = body;
                    loop {
                        let Some(n) = src[at..].find('\n') else {
                            return Err(format!(
                                "line {}: a text: string never ends with a line holding \".\"",
                                line_of(start)
                            ));
                        };
                        let line = src[at..at + n].trim_end_matches('\r');
                        at += n + 1;
                        if line == "." {
                            break;
                        }
                        value.push_str(line.strip_prefix('.').unwrap_or(line));
                        value.push('\n');
                    }
                    i = at;
                    out.push(Token {
                        kind: Kind::Str(value),
                        span: start..i,
                    });
                    continue;
                }
                out.push(Token {
                    kind: Kind::Ident,
                    span: start..i,
                });
            }
            b';' | b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' => {
                i += 1;
                out.push(Token {
                    kind: Kind::Punct(c as char),
                    span: start..i,
                });
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(format!("line {}: unexpected {ch:?}", line_of(i)));
            }
        }
    }
    Ok(out)
}

/// One command: the index of its name among the tokens, of the `;` or `{` that ends its
/// arguments, and how deep in blocks it sits (0: top level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The name token.
    pub name: usize,
    /// The token ending its arguments: `;`, or `{` for a command with a block.
    pub end: usize,
    /// Block depth.
    pub depth: usize,
}

/// The commands of a script, in order, nested ones included.
pub fn commands(toks: &[Token]) -> Vec<Command> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut at_command = true;
    let mut pending: Option<(usize, usize)> = None;
    for (i, t) in toks.iter().enumerate() {
        match &t.kind {
            Kind::Ident if at_command => {
                pending = Some((i, depth));
                at_command = false;
            }
            Kind::Punct(';') => {
                if let Some((name, d)) = pending.take() {
                    out.push(Command {
                        name,
                        end: i,
                        depth: d,
                    });
                }
                at_command = true;
            }
            Kind::Punct('{') => {
                if let Some((name, d)) = pending.take() {
                    out.push(Command {
                        name,
                        end: i,
                        depth: d,
                    });
                }
                depth += 1;
                at_command = true;
            }
            Kind::Punct('}') => {
                depth = depth.saturating_sub(1);
                at_command = true;
            }
            _ => {}
        }
    }
    out
}

/// The name of a command, lower-cased.
pub fn name(src: &str, toks: &[Token], c: &Command) -> String {
    src[toks[c.name].span.clone()].to_ascii_lowercase()
}

/// Edits to a script: insertions and replacements at byte positions of the original.
#[derive(Debug, Default)]
pub struct Edits(Vec<(Range<usize>, String)>);

impl Edits {
    /// Put `text` at `at`.
    pub fn insert(&mut self, at: usize, text: impl Into<String>) {
        self.0.push((at..at, text.into()));
    }

    /// Replace the bytes of `span` by `text`.
    pub fn replace(&mut self, span: Range<usize>, text: impl Into<String>) {
        self.0.push((span, text.into()));
    }

    /// How many edits there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The script with every edit made; insertions at one place keep their order.
    pub fn apply(mut self, src: &str) -> String {
        self.0.sort_by_key(|(r, _)| (r.start, r.end));
        let mut out = String::with_capacity(src.len() + 256);
        let mut at = 0;
        for (r, text) in self.0 {
            if r.start < at {
                continue; // overlapping edits: the first one stands
            }
            out.push_str(&src[at..r.start]);
            out.push_str(&text);
            at = r.end;
        }
        out.push_str(&src[at..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_comments_and_commands() {
        let src = "require [\"fileinto\", \"vacation\"]; # a comment; stop\n/* stop; */\nif header :contains \"subject\" \"a;b\\\"c\" {\n  fileinto \"X\";\n  stop;\n}\nvacation text:\nciao;\n..dot\n.\n;\n";
        let toks = tokens(src).unwrap();
        let cmds = commands(&toks);
        let names: Vec<(String, usize)> = cmds
            .iter()
            .map(|c| (name(src, &toks, c), c.depth))
            .collect();
        assert_eq!(
            names,
            [
                ("require".into(), 0),
                ("if".into(), 0),
                ("fileinto".into(), 1),
                ("stop".into(), 1),
                ("vacation".into(), 0)
            ]
        );
        let strings: Vec<String> = toks
            .iter()
            .filter_map(|t| match &t.kind {
                Kind::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        assert!(strings.contains(&"a;b\"c".to_string()));
        assert!(strings.contains(&"ciao;\n.dot\n".to_string()));
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(
            tokens("keep;\n\"open").unwrap_err(),
            "line 2: a string is never closed"
        );
        assert!(tokens("/* never").unwrap_err().starts_with("line 1"));
    }

    #[test]
    fn edits_keep_the_rest() {
        let src = "stop;";
        let mut e = Edits::default();
        e.replace(0..4, "return");
        e.insert(0, "# a\n");
        assert_eq!(e.apply(src), "# a\nreturn;");
    }
}
