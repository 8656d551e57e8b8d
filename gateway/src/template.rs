//! `google.api.http` path templates: parsing and matching, no I/O.
//!
//! ```text
//! Template = "/" Segments [ Verb ] ;   Segment  = "*" | "**" | LITERAL | Variable ;
//! Variable = "{" FieldPath [ "=" Segments ] "}" ;   Verb = ":" LITERAL ;
//! ```
//! `{id}` means `{id=*}`. A variable that spans several segments (`{name=shelves/*/books/*}`)
//! binds the matched segments joined by `/`.

use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Literal(String),
    Star,
    DoubleStar,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Var {
    /// Field path, e.g. `["shelf", "id"]`.
    field: Vec<String>,
    /// The template segments it covers: `start..end`.
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segs: Vec<Seg>,
    vars: Vec<Var>,
    verb: Option<String>,
    source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path template {template:?}: {reason}")]
pub struct TemplateError {
    template: String,
    reason: &'static str,
}

impl PathTemplate {
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let err = |reason| TemplateError { template: template.to_owned(), reason };
        let rest = template.strip_prefix('/').ok_or_else(|| err("must start with /"))?;
        // The verb follows the last segment, outside any variable.
        let (body, verb) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('}') && !rest[i..].contains('/') => {
                (&rest[..i], Some(rest[i + 1..].to_owned()))
            }
            _ => (rest, None),
        };
        let mut segs = Vec::new();
        let mut vars = Vec::new();
        let mut chars = body;
        while !chars.is_empty() {
            if let Some(inner) = chars.strip_prefix('{') {
                let close = inner.find('}').ok_or_else(|| err("unclosed {"))?;
                let (field, pattern) = match inner[..close].split_once('=') {
                    Some((f, p)) => (f, p),
                    None => (&inner[..close], "*"),
                };
                if field.is_empty() || !field.split('.').all(is_ident) {
                    return Err(err("bad field path"));
                }
                let start = segs.len();
                for p in pattern.split('/') {
                    segs.push(parse_seg(p).ok_or_else(|| err("bad segment in variable"))?);
                }
                vars.push(Var { field: field.split('.').map(str::to_owned).collect(), start, end: segs.len() });
                chars = &inner[close + 1..];
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                let seg = &chars[..end];
                if seg.contains('{') || seg.contains('}') {
                    return Err(err("variable must be a whole segment"));
                }
                segs.push(parse_seg(seg).ok_or_else(|| err("empty segment"))?);
                chars = &chars[end..];
            }
            chars = match chars.strip_prefix('/') {
                Some("") => return Err(err("trailing /")),
                Some(rest) => rest,
                None if chars.is_empty() => chars,
                None => return Err(err("expected /")),
            };
        }
        if let Some(i) = segs.iter().position(|s| *s == Seg::DoubleStar)
            && i != segs.len() - 1
        {
            return Err(err("** must be the last segment"));
        }
        Ok(Self { segs, vars, verb, source: template.to_owned() })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Field paths bound by the path, e.g. `shelf.id`.
    pub fn variables(&self) -> impl Iterator<Item = String> + '_ {
        self.vars.iter().map(|v| v.field.join("."))
    }

    /// How specific the template is: more literal segments win over wildcards.
    pub fn specificity(&self) -> (usize, usize) {
        let literals = self.segs.iter().filter(|s| matches!(s, Seg::Literal(_))).count();
        (literals + usize::from(self.verb.is_some()), self.segs.len())
    }

    /// Matches a request path (still percent-encoded); returns the variable bindings.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let rest = path.strip_prefix('/')?;
        let rest = match &self.verb {
            Some(verb) => rest.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => rest,
        };
        let parts: Vec<&str> = if rest.is_empty() { Vec::new() } else { rest.split('/').collect() };
        let mut bound: Vec<(usize, usize)> = Vec::with_capacity(self.segs.len()); // request ranges per template seg
        let mut i = 0;
        for seg in &self.segs {
            match seg {
                Seg::Literal(l) => {
                    if parts.get(i).map(|p| decode(p)) != Some(l.clone()) {
                        return None;
                    }
                    bound.push((i, i + 1));
                    i += 1;
                }
                Seg::Star => {
                    // An empty segment still matches, so the handler can say which variable is missing.
                    parts.get(i)?;
                    bound.push((i, i + 1));
                    i += 1;
                }
                Seg::DoubleStar => {
                    bound.push((i, parts.len()));
                    i = parts.len();
                }
            }
        }
        if i != parts.len() {
            return None;
        }
        Some(
            self.vars
                .iter()
                .map(|v| {
                    let (from, to) = (bound[v.start].0, bound[v.end - 1].1);
                    let value = parts[from..to].iter().map(|p| decode(p)).collect::<Vec<_>>().join("/");
                    (v.field.join("."), value)
                })
                .collect(),
        )
    }
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_seg(s: &str) -> Option<Seg> {
    match s {
        "" => None,
        "*" => Some(Seg::Star),
        "**" => Some(Seg::DoubleStar),
        lit => Some(Seg::Literal(lit.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: &str, path: &str) -> Option<Vec<(String, String)>> {
        PathTemplate::parse(t).expect("template").matches(path)
    }

    fn b(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn simple_and_nested_variables_bind() {
        assert_eq!(m("/v1/festivals/{festival_id}/members", "/v1/festivals/abc/members"), b(&[("festival_id", "abc")]));
        assert_eq!(
            m("/v1/shelves/{shelf.id}/books/{book_id}", "/v1/shelves/s1/books/b%202"),
            b(&[("shelf.id", "s1"), ("book_id", "b 2")])
        );
        assert_eq!(m("/v1/me", "/v1/me"), b(&[]));
        assert_eq!(m("/v1/me", "/v1/me/x"), None);
        assert_eq!(m("/v1/festivals/{id}", "/v1/festivals/"), b(&[("id", "")]), "binds empty: the handler names it");
        assert_eq!(m("/v1/festivals/{id}", "/v1/festivals"), None);
    }

    #[test]
    fn multi_segment_variables_bind_the_whole_match() {
        assert_eq!(m("/v1/{name=festivals/*}", "/v1/festivals/f1"), b(&[("name", "festivals/f1")]));
        assert_eq!(m("/v1/{name=festivals/*}", "/v1/stages/f1"), None);
        assert_eq!(
            m("/v1/test/{name=shelves/*/books/**}", "/v1/test/shelves/1/books/a/b"),
            b(&[("name", "shelves/1/books/a/b")])
        );
    }

    #[test]
    fn verbs_are_matched_and_stripped() {
        assert_eq!(m("/v1/admin/signing-keys:rotate", "/v1/admin/signing-keys:rotate"), b(&[]));
        assert_eq!(m("/v1/admin/signing-keys:rotate", "/v1/admin/signing-keys"), None);
        assert_eq!(m("/v1/books/{id}:touch", "/v1/books/42:touch"), b(&[("id", "42")]));
    }

    #[test]
    fn malformed_templates_are_refused() {
        for t in ["v1/x", "/v1/{x", "/v1/a{x}", "/v1/**/x", "/v1//x", "/v1/x/", "/v1/{a-b}"] {
            assert!(PathTemplate::parse(t).is_err(), "{t}");
        }
    }

    #[test]
    fn literal_templates_are_more_specific() {
        let a = PathTemplate::parse("/v1/festivals/current").expect("a");
        let b = PathTemplate::parse("/v1/festivals/{id}").expect("b");
        assert!(a.specificity() > b.specificity());
    }
}
