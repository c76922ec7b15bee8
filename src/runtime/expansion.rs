//! Kubernetes `$(VAR)` expansion of a container's `command`, `args` and `env` values, for both
//! runtimes (pure).

use std::collections::BTreeMap;

/// Kubernetes `$(VAR)` expansion (`third_party/forked/golang/expansion`): defined variables are
/// replaced, undefined references stay as written, `$$` is a literal `$`.
pub fn expand_references(input: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(value) => out.push_str(value),
                        None => out.push_str(&format!("$({name})")),
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defined_references_expand_and_the_rest_stays() {
        let vars = BTreeMap::from([("A", "x")]);
        assert_eq!(
            expand_references("$(A)-$$(A)-$(NOPE)-$(-$", &vars),
            "x-$(A)-$(NOPE)-$(-$"
        );
    }
}
