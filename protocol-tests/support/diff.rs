//! Field-by-field comparison of two protocol responses: Apache Kafka's and ours.
//!
//! Every kafka-protocol message derives `Debug`, so its `{:?}` text is a complete, generic view
//! of its fields. We parse that text into a small tree ([`Node`]), let the caller normalise the
//! fields that must differ between two brokers ([`Rules`]), and walk both trees side by side
//! ([`diff`]), naming each difference by its path: `topics[orders].partitions[0].error_code`.
//!
//! Lists of records that carry a natural key (`name`, `partition_index`, `api_key`, …) are
//! matched by that key rather than by position, so a config Kafka returns and we do not shows up
//! as one missing entry instead of a cascade of shifted ones.

use std::fmt::Debug;

/// A value from a `{:?}` rendering.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A number, bool, uuid, unit variant (`None`), quoted string or byte string, as printed.
    Atom(String),
    List(Vec<Node>),
    /// A map (`{k: v}`), keys as printed.
    Map(Vec<(String, Node)>),
    /// A struct with named fields.
    Struct(String, Vec<(String, Node)>),
    /// A tuple struct or variant, such as `Some(x)`.
    Tuple(String, Vec<Node>),
}

impl Node {
    /// The node as compact text, close to how `{:?}` printed it.
    pub fn render(&self) -> String {
        match self {
            Node::Atom(a) => a.clone(),
            Node::List(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(Node::render)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Node::Map(entries) => format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.render()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Node::Struct(name, fields) => format!(
                "{name} {{ {} }}",
                fields
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.render()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Node::Tuple(name, items) => format!(
                "{name}({})",
                items
                    .iter()
                    .map(Node::render)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The named field of a struct.
    pub fn field(&self, name: &str) -> Option<&Node> {
        match self {
            Node::Struct(_, fields) => fields.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Parses a value's `{:?}` text.
pub fn tree<T: Debug>(value: &T) -> Node {
    parse(&format!("{value:?}"))
}

/// Parses `{:?}` text (derived `Debug` output: structs, tuples, lists, maps, atoms).
pub fn parse(text: &str) -> Node {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    p.value()
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&mut self) -> Option<u8> {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A quoted string starting at the opening quote, returned with its quotes.
    fn quoted(&mut self) -> String {
        let start = self.i;
        self.i += 1;
        while let Some(&c) = self.s.get(self.i) {
            self.i += 1;
            match c {
                b'\\' => self.i += 1,
                b'"' => break,
                _ => {}
            }
        }
        String::from_utf8_lossy(&self.s[start..self.i.min(self.s.len())]).into_owned()
    }

    fn token(&mut self) -> String {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| !b",:()[]{}".contains(c) && !c.is_ascii_whitespace())
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    /// Items up to `close`, separated by commas.
    fn items<T>(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return out,
                Some(c) if c == close => {
                    self.i += 1;
                    return out;
                }
                _ => {}
            }
            let before = self.i;
            out.push(item(self));
            self.eat(b',');
            if self.i == before {
                // Not a value we understand: skip a byte rather than loop forever.
                self.i += 1;
            }
        }
    }

    fn value(&mut self) -> Node {
        match self.peek() {
            None => Node::Atom(String::new()),
            Some(b'"') => Node::Atom(self.quoted()),
            Some(b'b') if self.s.get(self.i + 1) == Some(&b'"') => {
                self.i += 1;
                Node::Atom(format!("b{}", self.quoted()))
            }
            Some(b'[') => {
                self.i += 1;
                Node::List(self.items(b']', Parser::value))
            }
            Some(b'{') => {
                self.i += 1;
                Node::Map(self.items(b'}', |p| {
                    let key = p.value().render();
                    p.eat(b':');
                    (key, p.value())
                }))
            }
            Some(_) => {
                let name = self.token();
                match self.peek() {
                    Some(b'{') => {
                        self.i += 1;
                        let fields = self.items(b'}', |p| {
                            p.peek();
                            let field = p.token();
                            p.eat(b':');
                            (field, p.value())
                        });
                        Node::Struct(name, fields)
                    }
                    Some(b'(') => {
                        self.i += 1;
                        Node::Tuple(name, self.items(b')', Parser::value))
                    }
                    _ => Node::Atom(name),
                }
            }
        }
    }
}

/// How to treat fields that must or may differ between two brokers, by field name. What goes
/// in here, and why, is the caller's policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules<'a> {
    /// Fields left out of the comparison.
    pub drop: &'a [&'a str],
    /// Fields compared by presence only: `None`, empty, or `<present>`.
    pub presence: &'a [&'a str],
}

/// Applies `rules` throughout `node`, and masks generated UUIDs (topic ids, the random part of
/// member ids) as `<uuid>`: two brokers never generate the same ones, but the all-zero UUID and
/// where ids appear are compared.
pub fn normalise(node: &mut Node, rules: &Rules) {
    match node {
        Node::Atom(a) => *a = mask_uuids(a),
        Node::List(items) | Node::Tuple(_, items) => {
            items.iter_mut().for_each(|n| normalise(n, rules))
        }
        Node::Map(entries) => entries.iter_mut().for_each(|(_, n)| normalise(n, rules)),
        Node::Struct(_, fields) => {
            fields.retain(|(k, _)| !rules.drop.contains(&k.as_str()));
            for (k, v) in fields.iter_mut() {
                if rules.presence.contains(&k.as_str()) {
                    *v = presence(v);
                } else {
                    normalise(v, rules);
                }
            }
        }
    }
}

/// `<present>` or `<none>`: null, an empty string and an empty list all count as none (clients
/// treat a null and an empty message alike).
fn presence(node: &Node) -> Node {
    let none = match node {
        Node::Tuple(name, items) if name == "Some" && items.len() == 1 => {
            return presence(&items[0]);
        }
        Node::Atom(a) => a == "None" || a == "\"\"" || a.is_empty(),
        Node::List(items) => items.is_empty(),
        _ => false,
    };
    Node::Atom(if none { NONE } else { PRESENT }.to_string())
}

pub const PRESENT: &str = "<present>";
pub const NONE: &str = "<none>";

/// Replaces every UUID in `text` other than the all-zero one by `<uuid>`.
pub fn mask_uuids(text: &str) -> String {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'scan: while i < b.len() {
        if i + 36 <= b.len() && (i == 0 || !b[i - 1].is_ascii_hexdigit()) {
            let mut j = i;
            let mut ok = true;
            for (n, len) in SHAPE.iter().enumerate() {
                if n > 0 {
                    ok &= b[j] == b'-';
                    j += 1;
                }
                ok &= b[j..j + len].iter().all(u8::is_ascii_hexdigit);
                j += len;
            }
            if ok && b.get(j).is_none_or(|c| !c.is_ascii_hexdigit()) {
                if b[i..j].iter().all(|c| *c == b'0' || *c == b'-') {
                    out.push_str(&text[i..j]);
                } else {
                    out.push_str("<uuid>");
                }
                i = j;
                continue 'scan;
            }
        }
        let c = text[i..].chars().next().unwrap_or('?');
        out.push(c);
        i += c.len_utf8().max(1);
    }
    out
}

/// One field that differs: its path and both values (`<absent>` where one side lacks it).
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub path: String,
    pub kafka: String,
    pub klamm: String,
}

pub const ABSENT: &str = "<absent>";

/// Fields that identify an element of a list, most specific first.
const KEYS: &[&str] = &[
    "api_key",
    "name",
    "resource_name",
    "partition_index",
    "partition",
    "group_id",
    "topic",
    "index",
];

/// Compares two (normalised) trees.
pub fn diff(kafka: &Node, klamm: &Node) -> Vec<Difference> {
    let mut out = Vec::new();
    walk("", kafka, klamm, &mut out);
    out
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn shorten(text: String) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

fn differ(path: &str, kafka: Option<&Node>, klamm: Option<&Node>, out: &mut Vec<Difference>) {
    let show = |n: Option<&Node>| n.map_or(ABSENT.to_string(), |n| shorten(n.render()));
    out.push(Difference {
        path: path.to_string(),
        kafka: show(kafka),
        klamm: show(klamm),
    });
}

fn walk(path: &str, a: &Node, b: &Node, out: &mut Vec<Difference>) {
    match (a, b) {
        (Node::Struct(na, fa), Node::Struct(nb, fb)) if na == nb => {
            for (k, va) in fa {
                match fb.iter().find(|(kb, _)| kb == k) {
                    Some((_, vb)) => walk(&join(path, k), va, vb, out),
                    None => differ(&join(path, k), Some(va), None, out),
                }
            }
            for (k, vb) in fb.iter().filter(|(k, _)| !fa.iter().any(|(ka, _)| ka == k)) {
                differ(&join(path, k), None, Some(vb), out);
            }
        }
        (Node::Tuple(na, ia), Node::Tuple(nb, ib)) if na == nb && ia.len() == ib.len() => {
            for (n, (x, y)) in ia.iter().zip(ib).enumerate() {
                let p = if ia.len() == 1 {
                    path.to_string()
                } else {
                    join(path, &n.to_string())
                };
                walk(&p, x, y, out);
            }
        }
        (Node::Map(ea), Node::Map(eb)) => {
            let ka: Vec<(String, &Node)> = ea.iter().map(|(k, v)| (k.clone(), v)).collect();
            let kb: Vec<(String, &Node)> = eb.iter().map(|(k, v)| (k.clone(), v)).collect();
            keyed(path, &ka, &kb, out);
        }
        (Node::List(la), Node::List(lb)) => match list_key(la, lb) {
            Some(key) => keyed(path, &by_key(key, la), &by_key(key, lb), out),
            None => {
                for i in 0..la.len().max(lb.len()) {
                    let p = format!("{path}[{i}]");
                    match (la.get(i), lb.get(i)) {
                        (Some(x), Some(y)) => walk(&p, x, y, out),
                        (x, y) => differ(&p, x, y, out),
                    }
                }
            }
        },
        _ if a == b => {}
        _ => differ(path, Some(a), Some(b), out),
    }
}

fn keyed(path: &str, a: &[(String, &Node)], b: &[(String, &Node)], out: &mut Vec<Difference>) {
    for (k, x) in a {
        let p = format!("{path}[{k}]");
        match b.iter().find(|(kb, _)| kb == k) {
            Some((_, y)) => walk(&p, x, y, out),
            None => differ(&p, Some(x), None, out),
        }
    }
    for (k, y) in b.iter().filter(|(k, _)| !a.iter().any(|(ka, _)| ka == k)) {
        differ(&format!("{path}[{k}]"), None, Some(y), out);
    }
}

fn by_key<'a>(key: &str, list: &'a [Node]) -> Vec<(String, &'a Node)> {
    list.iter()
        .map(|n| (key_text(key, n.field(key)), n))
        .collect()
}

/// The key field shared by every element of both lists and unique within each, if any.
fn list_key(a: &[Node], b: &[Node]) -> Option<&'static str> {
    if a.is_empty() && b.is_empty() {
        return None;
    }
    KEYS.iter().copied().find(|key| {
        [a, b].iter().all(|list| {
            let mut seen: Vec<String> = Vec::new();
            list.iter().all(|n| match n.field(key).map(unwrap_some) {
                Some(Node::Atom(v)) if !seen.contains(v) => {
                    seen.push(v.clone());
                    true
                }
                _ => false,
            })
        })
    })
}

/// `x` for `Some(x)`, else the node itself (nullable keys such as Metadata's topic names).
fn unwrap_some(node: &Node) -> &Node {
    match node {
        Node::Tuple(name, items) if name == "Some" && items.len() == 1 => &items[0],
        other => other,
    }
}

/// A key as a path segment: strings without their quotes, API keys by name.
fn key_text(key: &str, value: Option<&Node>) -> String {
    let raw = value.map(|v| unwrap_some(v).render()).unwrap_or_default();
    if key == "api_key" {
        if let Some(name) = raw
            .parse::<i16>()
            .ok()
            .and_then(|k| kafka_protocol::messages::ApiKey::try_from(k).ok())
        {
            return format!("{name:?}");
        }
    }
    raw.trim_matches('"').to_string()
}

/// Shell-style matching with `*` (any run of characters), for lists of expected differences.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}
