//! Decoding a manifest's YAML into a JSON value under a budget. YAML anchors and aliases let a
//! few kilobytes stand for gigabytes ("billion laughs"); serde_yaml's own guard counts alias
//! jumps, not what they expand to. Here every node and every byte of every scalar the decoder
//! produces is paid from a budget the size of the file (plus a little), so a document can never
//! decode into more than the file itself holds: plain manifests never notice, an alias bomb is
//! refused after a bounded amount of work. Pure.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Slack over the file's size, so that a small file using an alias or two still decodes.
const BUDGET_SLACK: usize = 4096;

/// Why decoding failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum YamlError {
    /// The document expands (through aliases) to more than the file holds.
    Expansion,
    Syntax(String),
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            YamlError::Expansion => f.write_str(
                "YAML aliases expand the document beyond the size of the file; anchors (&) and aliases (*) that repeat content are not accepted in pod manifests",
            ),
            YamlError::Syntax(message) => f.write_str(message),
        }
    }
}

/// Decodes one YAML (or JSON) document into a JSON value, refusing alias expansion beyond the
/// input's size.
pub fn decode(text: &str) -> Result<Value, YamlError> {
    let budget = Budget {
        left: Cell::new(text.len().saturating_add(BUDGET_SLACK)),
        exceeded: Cell::new(false),
    };
    let deserializer = serde_yaml::Deserializer::from_str(text);
    match (&budget).deserialize(deserializer) {
        Ok(value) => Ok(value),
        Err(_) if budget.exceeded.get() => Err(YamlError::Expansion),
        Err(e) => Err(YamlError::Syntax(e.to_string())),
    }
}

struct Budget {
    left: Cell<usize>,
    exceeded: Cell<bool>,
}

impl Budget {
    fn pay<E: serde::de::Error>(&self, cost: usize) -> Result<(), E> {
        match self.left.get().checked_sub(cost.max(1)) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("expansion budget exceeded"))
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for &Budget {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &Budget {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.pay(1)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.pay(1)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.pay(1)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.pay(1)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.pay(v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.pay(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.pay(1)?;
        Ok(Value::Null)
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.pay(1)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.pay(1)?;
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(self)? {
            let key = match key {
                Value::String(s) => s,
                Value::Null => "null".to_string(),
                other => other.to_string(),
            };
            let value = map.next_value_seed(self)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_documents_decode_as_serde_yaml_does() {
        let text = "a: 1\nb: [x, true, ~, 2.5]\nc: {d: e}\n";
        let expected: Value = serde_yaml::from_str(text).unwrap();
        assert_eq!(decode(text).unwrap(), expected);
        assert!(matches!(decode("a: [1"), Err(YamlError::Syntax(_))));
    }

    #[test]
    fn a_small_alias_is_fine_and_bombs_are_refused_quickly() {
        assert!(decode("a: &x {b: 1}\nc: *x\n").is_ok());
        // Flat: 2000 aliases of a 2000-item list, 4 million nodes from ~20 KB. serde_yaml's own
        // guard (100 alias jumps per event) lets this through.
        let items = vec!["x"; 2000].join(", ");
        let aliases = vec!["*a"; 2000].join(", ");
        let flat = format!("a: &a [{items}]\nb: [{aliases}]\n");
        let started = std::time::Instant::now();
        assert_eq!(decode(&flat), Err(YamlError::Expansion));
        // Nested: each level repeats the one before nine times, 9^8 leaves from ~1 KB.
        let mut nested = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for level in 1..=8 {
            let prev = format!("*l{}", level - 1);
            nested.push_str(&format!(
                "l{level}: &l{level} [{}]\n",
                vec![prev; 9].join(", ")
            ));
        }
        assert!(decode(&nested).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(YamlError::Expansion.to_string().contains("aliases"));
    }
}
