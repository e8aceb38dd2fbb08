//! Typed definitions of configuration keys, shared by broker and topic configs: each key's type,
//! allowed values and default, so validation messages can say what is allowed.

/// The type and allowed range of a configuration value.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Int {
        min: i64,
        max: i64,
    },
    /// An integer in [min, max], or the one value `or` outside it (gzip's level: 1..9 or -1).
    IntOr {
        min: i64,
        max: i64,
        or: i64,
    },
    Long {
        min: i64,
        max: i64,
    },
    Double {
        min: f64,
        max: f64,
    },
    Bool,
    Str,
    /// A comma-separated list.
    List,
    /// One of a fixed set (compared case-insensitively where Kafka does).
    Choice(&'static [&'static str]),
    /// A comma-separated list whose items are each one of a fixed set.
    ListOf(&'static [&'static str]),
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Def {
    pub name: &'static str,
    pub kind: Kind,
    /// The default as Kafka prints it; `None` for "no value" (null).
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

/// A validated value, normalised (e.g. a choice in its canonical spelling).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Double(f64),
    Bool(bool),
    Str(String),
    List(Vec<String>),
}

impl Value {
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(v) => Some(*v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_list(&self) -> Option<&[String]> {
        match self {
            Value::List(v) => Some(v),
            _ => None,
        }
    }
    /// The value as Kafka shows it in DescribeConfigs and config files.
    pub fn render(&self) -> String {
        match self {
            Value::Int(v) => v.to_string(),
            Value::Double(v) => java_double(*v),
            Value::Bool(v) => v.to_string(),
            Value::Str(v) => v.clone(),
            Value::List(v) => v.join(","),
        }
    }
}

/// A double as Java's `Double.toString` prints it (and so Kafka shows it): plain decimals with
/// at least one fractional digit between 10⁻³ and 10⁷, scientific notation with `E` outside.
fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = format!("{v:e}");
    let (mantissa, exponent) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    if mantissa.contains('.') {
        format!("{mantissa}E{exponent}")
    } else {
        format!("{mantissa}.0E{exponent}")
    }
}

impl Kind {
    /// What a value must look like, for error messages.
    pub fn allowed(&self) -> String {
        match self {
            Kind::Int { min, max } | Kind::Long { min, max } => {
                let t = if matches!(self, Kind::Int { .. }) {
                    "an integer"
                } else {
                    "a long"
                };
                let int_max = i32::MAX as i64;
                let int_min = i32::MIN as i64;
                match (*min, *max) {
                    (i64::MIN, i64::MAX) => t.to_string(),
                    (m, x) if m == int_min && x == int_max => t.to_string(),
                    (min, i64::MAX) => format!("{t} ≥ {min}"),
                    (min, x) if x == int_max => format!("{t} ≥ {min}"),
                    (min, max) => format!("{t} in [{min}, {max}]"),
                }
            }
            Kind::IntOr { min, max, or } => format!("[{min},...,{max}] or {or}"),
            Kind::Double { min, max } => format!("a number in [{min}, {max}]"),
            Kind::Bool => "true or false".to_string(),
            Kind::Str => "a string".to_string(),
            Kind::List => "a comma-separated list".to_string(),
            Kind::Choice(options) => format!("one of {}", options.join(", ")),
            Kind::ListOf(options) => format!("a comma-separated list of {}", options.join(", ")),
        }
    }

    /// Parses and range-checks a raw value; the error is what is allowed.
    pub fn parse(&self, raw: &str) -> Result<Value, String> {
        let raw = raw.trim();
        let bad = || self.allowed();
        match self {
            Kind::Int { min, max } | Kind::Long { min, max } => {
                let v: i64 = raw.parse().map_err(|_| bad())?;
                let cap = if matches!(self, Kind::Int { .. }) {
                    i32::MAX as i64
                } else {
                    i64::MAX
                };
                let floor = if matches!(self, Kind::Int { .. }) {
                    i32::MIN as i64
                } else {
                    i64::MIN
                };
                if v < *min || v > *max || v > cap || v < floor {
                    return Err(bad());
                }
                Ok(Value::Int(v))
            }
            Kind::IntOr { min, max, or } => {
                let v: i64 = raw.parse().map_err(|_| bad())?;
                if v != *or && (v < *min || v > *max) {
                    return Err(bad());
                }
                Ok(Value::Int(v))
            }
            Kind::Double { min, max } => {
                let v: f64 = raw.parse().map_err(|_| bad())?;
                if !(v >= *min && v <= *max) {
                    return Err(bad());
                }
                Ok(Value::Double(v))
            }
            Kind::Bool => match raw.to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(bad()),
            },
            Kind::Str => Ok(Value::Str(raw.to_string())),
            Kind::List => Ok(Value::List(split_list(raw))),
            Kind::Choice(options) => options
                .iter()
                .find(|o| o.eq_ignore_ascii_case(raw))
                .map(|o| Value::Str(o.to_string()))
                .ok_or_else(bad),
            Kind::ListOf(options) => {
                let items = split_list(raw);
                let mut out = Vec::new();
                for item in items {
                    let found = options
                        .iter()
                        .find(|o| o.eq_ignore_ascii_case(&item))
                        .ok_or_else(bad)?;
                    out.push(found.to_string());
                }
                Ok(Value::List(out))
            }
        }
    }
}

pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

pub const ANY_INT: Kind = Kind::Int {
    min: i32::MIN as i64,
    max: i32::MAX as i64,
};
pub const ANY_LONG: Kind = Kind::Long {
    min: i64::MIN,
    max: i64::MAX,
};
pub const fn int_at_least(min: i64) -> Kind {
    Kind::Int {
        min,
        max: i32::MAX as i64,
    }
}
pub const fn long_at_least(min: i64) -> Kind {
    Kind::Long { min, max: i64::MAX }
}

pub fn find<'a>(defs: &'a [Def], name: &str) -> Option<&'a Def> {
    defs.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {

    #[test]
    fn doubles_print_as_java_does() {
        use super::java_double;
        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(f64::MAX), "1.7976931348623157E308");
        assert_eq!(java_double(1.5e-5), "1.5E-5");
    }

    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(int_at_least(1).parse("3"), Ok(Value::Int(3)));
        assert!(int_at_least(1).parse("0").unwrap_err().contains("≥ 1"));
        assert!(int_at_least(1).parse("99999999999").is_err());
        assert_eq!(Kind::Bool.parse("TRUE"), Ok(Value::Bool(true)));
        let c = Kind::Choice(&["CreateTime", "LogAppendTime"]);
        assert_eq!(
            c.parse("logappendtime"),
            Ok(Value::Str("LogAppendTime".into()))
        );
        assert!(c.parse("x").unwrap_err().contains("CreateTime"));
        let l = Kind::ListOf(&["delete", "compact"]);
        assert_eq!(
            l.parse("compact, delete"),
            Ok(Value::List(vec!["compact".into(), "delete".into()]))
        );
    }
}
