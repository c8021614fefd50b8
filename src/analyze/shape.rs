//! A statement's shape: its text with plain literals lifted out as `$n` placeholders, so that
//! `... WHERE id = 7` and `... WHERE id = 8` share one cached analysis. Also splits a simple
//! query string into statements. A small lexer, not a parser: it only has to know where quotes,
//! comments and dollar-quoting start and end (PostgreSQL's scan.l).

/// A literal lifted out of the text, in order: `$1` is `literals[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    /// The literal's value: string contents with '' unescaped, or the number's digits.
    pub text: String,
    pub is_string: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub text: String,
    pub literals: Vec<Literal>,
}

/// Type names whose parenthesised modifiers must stay literal (`numeric(10,2)`).
const TYPE_WORDS: [&str; 10] = [
    "numeric",
    "decimal",
    "varchar",
    "char",
    "character",
    "varying",
    "bit",
    "time",
    "timestamp",
    "interval",
];

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Lifts literals out of `sql`. Returns None when the text already carries `$n` parameters or
/// holds something the lexer does not follow (an unterminated quote): such texts are analysed
/// as they are.
pub fn shape(sql: &str) -> Option<Shape> {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut literals = Vec::new();
    let mut i = 0;
    let mut last_word = String::new();
    // Depth of parentheses opened right after a type name; numbers inside stay literal.
    let mut typmod_depth = 0usize;
    let mut paren_depth = 0usize;
    let mut typmod_at: Vec<usize> = Vec::new();
    let mut prev_sig: u8 = b' ';
    // In a `BY 1, 2` list: numbers there are output-column ordinals, which the analysis reads
    // (GROUP BY 1 may be the distribution key), so they stay in the text.
    let mut by_list = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                let end = sql[i..].find('\n').map(|p| i + p).unwrap_or(b.len());
                out.push_str(&sql[i..end]);
                i = end;
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = sql[i + 2..].find("*/").map(|p| i + 2 + p + 2)?;
                out.push_str(&sql[i..end]);
                i = end;
                continue;
            }
            b'"' => {
                let end = sql[i + 1..].find('"').map(|p| i + 1 + p + 1)?;
                out.push_str(&sql[i..end]);
                i = end;
                prev_sig = b'"';
                last_word.clear();
                continue;
            }
            b'$' => {
                if b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    return None;
                }
                // Dollar quoting: $tag$ ... $tag$
                let tag_end = sql[i + 1..].find('$').map(|p| i + 1 + p)?;
                let tag = &sql[i..=tag_end];
                if !tag[1..tag.len() - 1].bytes().all(is_ident_byte) {
                    return None;
                }
                let body_end = sql[tag_end + 1..]
                    .find(tag)
                    .map(|p| tag_end + 1 + p + tag.len())?;
                out.push_str(&sql[i..body_end]);
                i = body_end;
                prev_sig = b'$';
                continue;
            }
            b'\'' => {
                // A quote glued to a word (E'..', B'..', U&'..') or after a type name
                // (DATE '..', INTERVAL '..') is not a plain literal.
                let glued = i > 0 && (is_ident_byte(b[i - 1]) || b[i - 1] == b'&');
                let mut j = i + 1;
                let mut value = String::new();
                loop {
                    let p = sql[j..].find('\'').map(|p| j + p)?;
                    value.push_str(&sql[j..p]);
                    if b.get(p + 1) == Some(&b'\'') {
                        value.push('\'');
                        j = p + 2;
                    } else {
                        j = p + 1;
                        break;
                    }
                }
                let after_type = prev_sig == b'w' && !is_keyword_before_value(&last_word);
                if glued || after_type {
                    out.push_str(&sql[i..j]);
                } else {
                    literals.push(Literal {
                        text: value,
                        is_string: true,
                    });
                    out.push('$');
                    out.push_str(&literals.len().to_string());
                }
                i = j;
                prev_sig = b'\'';
                last_word.clear();
                continue;
            }
            b'0'..=b'9' | b'.' if !(i > 0 && is_ident_byte(b[i - 1])) => {
                let start = i;
                let mut j = i;
                while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
                    j += 1;
                }
                if j < b.len() && (b[j] == b'e' || b[j] == b'E') {
                    let mut k = j + 1;
                    if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
                        k += 1;
                    }
                    if k < b.len() && b[k].is_ascii_digit() {
                        j = k;
                        while j < b.len() && b[j].is_ascii_digit() {
                            j += 1;
                        }
                    }
                }
                let tok = &sql[start..j];
                let glued_word = tok == "." || (j < b.len() && is_ident_byte(b[j]));
                if glued_word
                    || typmod_depth > 0
                    || by_list
                    || !tok.bytes().any(|d| d.is_ascii_digit())
                {
                    out.push_str(tok);
                } else {
                    literals.push(Literal {
                        text: tok.to_string(),
                        is_string: false,
                    });
                    out.push('$');
                    out.push_str(&literals.len().to_string());
                }
                i = j;
                prev_sig = b'0';
                last_word.clear();
                continue;
            }
            b'(' => {
                paren_depth += 1;
                if prev_sig == b'w' && TYPE_WORDS.contains(&last_word.as_str()) {
                    typmod_at.push(paren_depth);
                    typmod_depth += 1;
                }
            }
            b')' => {
                if typmod_at.last() == Some(&paren_depth) {
                    typmod_at.pop();
                    typmod_depth = typmod_depth.saturating_sub(1);
                }
                paren_depth = paren_depth.saturating_sub(1);
            }
            _ => {}
        }
        if is_ident_byte(c) {
            let start = i;
            while i < b.len() && is_ident_byte(b[i]) {
                i += 1;
            }
            let word = &sql[start..i];
            out.push_str(word);
            last_word = word.to_ascii_lowercase();
            by_list = last_word == "by";
            prev_sig = b'w';
            continue;
        }
        if !c.is_ascii_whitespace() {
            prev_sig = c;
            last_word.clear();
            by_list &= c == b',';
        }
        // Multi-byte characters are handled whole: find the char boundary.
        let ch_len = sql[i..].chars().next().map(|ch| ch.len_utf8()).unwrap_or(1);
        out.push_str(&sql[i..i + ch_len]);
        i += ch_len;
    }
    Some(Shape {
        text: out,
        literals,
    })
}

/// Words after which a quoted string is a value, not a typed literal.
fn is_keyword_before_value(w: &str) -> bool {
    matches!(
        w,
        "and"
            | "or"
            | "between"
            | "in"
            | "not"
            | "then"
            | "else"
            | "when"
            | "values"
            | "select"
            | "where"
            | "like"
            | "ilike"
            | "is"
            | "distinct"
            | "from"
            | "set"
            | "by"
            | "case"
            | "return"
            | "returning"
            | "on"
            | "having"
            | "limit"
            | "offset"
            | "any"
            | "all"
            | "some"
            | "escape"
            | "similar"
            | "to"
    )
}

/// Splits a simple query into statements at top-level semicolons; empty statements are dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut depth = 0i32;
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map(|p| i + p).unwrap_or(b.len());
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map(|p| i + 2 + p + 2)
                    .unwrap_or(b.len());
                continue;
            }
            q @ (b'\'' | b'"') => {
                let mut j = i + 1;
                while j < b.len() {
                    if b[j] == q {
                        if b.get(j + 1) == Some(&q) {
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    j += 1;
                }
                i = j + 1;
                continue;
            }
            b'$' if !b.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                if let Some(tag_end) = sql[i + 1..].find('$').map(|p| i + 1 + p) {
                    let tag = &sql[i..=tag_end];
                    if tag[1..tag.len() - 1].bytes().all(is_ident_byte) {
                        i = sql[tag_end + 1..]
                            .find(tag)
                            .map(|p| tag_end + 1 + p + tag.len())
                            .unwrap_or(b.len());
                        continue;
                    }
                }
            }
            b'(' => depth += 1,
            b')' => depth -= 1,
            b';' if depth <= 0 => {
                out.push(&sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&sql[start.min(sql.len())..]);
    out.into_iter().filter(|s| !is_blank(s)).collect()
}

/// True when the text holds only whitespace and comments.
pub fn is_blank(s: &str) -> bool {
    let mut rest = s.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.find('\n').map(|p| &r[p..]).unwrap_or("").trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map(|p| &r[p + 2..]).unwrap_or("").trim_start();
        } else {
            return rest.is_empty();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(s: &Shape) -> Vec<&str> {
        s.literals.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn lifts_plain_literals() {
        let s =
            shape("SELECT * FROM t WHERE id = 42 AND name = 'o''k'").unwrap_or_else(|| panic!());
        assert_eq!(s.text, "SELECT * FROM t WHERE id = $1 AND name = $2");
        assert_eq!(lits(&s), vec!["42", "o'k"]);
    }

    #[test]
    fn keeps_ordinals_in_by_lists() {
        let s =
            shape("SELECT a, b FROM t WHERE c = 3 GROUP BY 1, 2 ORDER BY 2 DESC, b + 4 LIMIT 5")
                .unwrap_or_else(|| panic!());
        assert_eq!(
            s.text,
            "SELECT a, b FROM t WHERE c = $1 GROUP BY 1, 2 ORDER BY 2 DESC, b + $2 LIMIT $3"
        );
    }

    #[test]
    fn keeps_typed_and_special_literals() {
        let s = shape("SELECT x::numeric(10,2), DATE '2024-01-01', E'a\\n', col1 FROM t2 WHERE d = '2024-01-02'::date")
            .unwrap_or_else(|| panic!());
        assert_eq!(
            s.text,
            "SELECT x::numeric(10,2), DATE '2024-01-01', E'a\\n', col1 FROM t2 WHERE d = $1::date"
        );
        assert!(shape("SELECT $1").is_none());
        let s = shape("SELECT $$ 1 $$, 'a' -- 5\n").unwrap_or_else(|| panic!());
        assert_eq!(s.text, "SELECT $$ 1 $$, $1 -- 5\n");
    }

    #[test]
    fn splits_on_top_level_semicolons() {
        assert_eq!(
            split_statements("SELECT 1; SELECT ';' ; -- x\n ;SELECT $$;$$"),
            vec!["SELECT 1", " SELECT ';' ", "SELECT $$;$$"]
        );
        assert!(is_blank(" -- hi\n /* x */ "));
    }
}
