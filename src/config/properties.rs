//! Java `.properties` files (Kafka's `server.properties`), read into figment.

use std::path::Path;

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// Parses the text of a properties file into key/value pairs, in order.
/// Supports `#`/`!` comments, `=`, `:` or whitespace separators, backslash line continuations
/// and the usual escapes.
pub fn parse(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut logical = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if logical.is_empty() && (trimmed.is_empty() || trimmed.starts_with(['#', '!'])) {
            continue;
        }
        logical.push_str(trimmed);
        // An odd number of trailing backslashes continues the line.
        let trailing = logical.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            logical.pop();
            if lines.clone().next().is_some() {
                continue;
            }
        }
        if let Some(pair) = split_pair(&logical) {
            out.push(pair);
        }
        logical.clear();
    }
    out
}

fn split_pair(line: &str) -> Option<(String, String)> {
    let mut key = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    key.push(unescape(n, &mut chars));
                }
            }
            '=' | ':' => break,
            c if c.is_whitespace() => {
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if chars.peek().is_some_and(|c| *c == '=' || *c == ':') {
                    chars.next();
                }
                break;
            }
            c => key.push(c),
        }
    }
    while chars.peek().is_some_and(|c| c.is_whitespace()) {
        chars.next();
    }
    let mut value = String::new();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                value.push(unescape(n, &mut chars));
            }
        } else {
            value.push(c);
        }
    }
    if key.is_empty() {
        return None;
    }
    Some((key, value.trim_end().to_string()))
}

fn unescape(c: char, rest: &mut std::iter::Peekable<std::str::Chars<'_>>) -> char {
    match c {
        't' => '\t',
        'n' => '\n',
        'r' => '\r',
        'f' => '\x0c',
        'u' => {
            let hex: String = (0..4).filter_map(|_| rest.next()).collect();
            u32::from_str_radix(&hex, 16)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}')
        }
        other => other,
    }
}

/// Key/value pairs (from a properties file or `--override`) as a figment provider. Keys are
/// nested on their dots, exactly as TOML and environment keys are, so all sources merge.
pub struct Pairs {
    pub name: String,
    pub pairs: Vec<(String, String)>,
}

impl Pairs {
    pub fn from_file(path: &Path) -> Result<Pairs, std::io::Error> {
        let text = std::fs::read_to_string(path)?;
        Ok(Pairs {
            name: format!("properties file {}", path.display()),
            pairs: parse(&text),
        })
    }
}

impl Provider for Pairs {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for (k, v) in &self.pairs {
            if let Some(nested) = figment::util::nest(k, Value::from(v.clone())).into_dict() {
                dict = merge(dict, nested);
            }
        }
        let mut map = Map::new();
        map.insert(Profile::Default, dict);
        Ok(map)
    }
}

fn merge(mut base: Dict, other: Dict) -> Dict {
    for (k, v) in other {
        let merged = match (base.remove(&k), v) {
            (Some(Value::Dict(_, a)), Value::Dict(_, b)) => Value::from(merge(a, b)),
            (_, v) => v,
        };
        base.insert(k, merged);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_style() {
        let text = "# comment\n! also\nbroker.id=0\nlisteners = PLAINTEXT://:9092\n\
                    log.dirs:/tmp/kafka-logs\nnum.partitions 3\nlong=a,\\\n   b\nesc=a\\=b\\u0041\n";
        let pairs = parse(text);
        assert_eq!(
            pairs,
            vec![
                ("broker.id".into(), "0".into()),
                ("listeners".into(), "PLAINTEXT://:9092".into()),
                ("log.dirs".into(), "/tmp/kafka-logs".into()),
                ("num.partitions".into(), "3".into()),
                ("long".into(), "a,b".into()),
                ("esc".into(), "a=bA".into()),
            ]
        );
    }
}
