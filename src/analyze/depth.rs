//! A bound on how deeply a statement's parse tree can nest, read from its tokens in one pass
//! without building the tree: the parser, our visitors and sqlparser's printer all recurse per
//! level, so a statement past the bound is refused (PostgreSQL's own answer to a too-deep
//! expression, 54001 "stack depth limit exceeded", check_stack_depth in postgres.c) and every
//! statement under it fits the runtime's thread stacks (see `server::runtime`).

/// Stack bytes one level of nesting may take across parse, analysis, rewrite and printing
/// (measured: about 1.6 KiB for a scattered `1+1+...` or `a AND b AND ...`), with headroom.
pub const STACK_PER_LEVEL: usize = 4096;

/// An upper bound on the nesting depth of `sql`'s expressions and set operations.
///
/// Binary and prefix operators chain without parentheses (`1+1+...`, `a OR b OR ...`,
/// `NOT NOT ...`, `x::t::t`, `SELECT .. UNION SELECT ..`), so every operator and operator
/// keyword since the last comma at the same parenthesis level adds one; a comma starts a
/// sibling (a list element, an argument), except for set operations, which chain across the
/// select lists between them. Parentheses and brackets add their own level. String literals,
/// quoted identifiers, dollar quotes and comments are skipped. Overestimates (precedence is
/// ignored), never underestimates.
pub fn estimate(sql: &str) -> usize {
    let b = sql.as_bytes();
    // Per open parenthesis: (depth at its opening, operators since the last comma, set ops).
    let mut levels: Vec<(usize, usize, usize)> = vec![(0, 0, 0)];
    let mut max = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied().unwrap_or(0);
        let mut bump = 0;
        match c {
            b'\'' => i = skip_quoted(b, i + 1, b'\''),
            b'"' => i = skip_quoted(b, i + 1, b'"'),
            b'-' if next == b'-' => {
                i = sql[i..].find('\n').map_or(b.len(), |p| i + p);
            }
            b'/' if next == b'*' => i = skip_block_comment(b, i + 2),
            b'$' if !next.is_ascii_digit() => match dollar_tag(b, i) {
                Some(tag_len) => {
                    let tag = &sql[i..i + tag_len];
                    i = sql[i + tag_len..]
                        .find(tag)
                        .map_or(b.len(), |p| i + tag_len + p + tag_len);
                }
                None => i += 1,
            },
            b'(' | b'[' => {
                let (base, run, set) = levels.last().copied().unwrap_or((0, 0, 0));
                let here = base + run + set + 1;
                levels.push((here, 0, 0));
                max = max.max(here);
                i += 1;
            }
            b')' | b']' => {
                if levels.len() > 1 {
                    levels.pop();
                }
                i += 1;
            }
            b',' => {
                if let Some(l) = levels.last_mut() {
                    l.1 = 0;
                }
                i += 1;
            }
            c if is_op_char(c) => {
                while i < b.len() && is_op_char(b[i]) && !starts_comment(b, i) {
                    i += 1;
                }
                bump = 1;
            }
            b':' if next == b':' => {
                i += 2;
                bump = 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'$'
                        || b[i] >= 0x80)
                {
                    i += 1;
                }
                // Quoted strings right after a word (E'..', B'..', U&'..') are still literals:
                // the next turn of the loop skips them.
                let word = &sql[start..i];
                if is_set_op(word) {
                    if let Some(l) = levels.last_mut() {
                        l.2 += 1;
                    }
                } else if is_op_word(word) {
                    bump = 1;
                }
            }
            _ => i += 1,
        }
        if bump > 0 {
            if let Some(l) = levels.last_mut() {
                l.1 += bump;
            }
        }
        if let Some(&(base, run, set)) = levels.last() {
            max = max.max(base + run + set);
        }
    }
    max
}

fn is_op_char(c: u8) -> bool {
    matches!(
        c,
        b'+' | b'-'
            | b'*'
            | b'/'
            | b'<'
            | b'>'
            | b'='
            | b'~'
            | b'!'
            | b'@'
            | b'#'
            | b'%'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
    )
}

fn starts_comment(b: &[u8], i: usize) -> bool {
    matches!(
        (b.get(i), b.get(i + 1)),
        (Some(b'-'), Some(b'-')) | (Some(b'/'), Some(b'*'))
    )
}

fn is_op_word(w: &str) -> bool {
    const WORDS: [&str; 20] = [
        "and", "or", "not", "is", "in", "like", "ilike", "similar", "between", "case", "collate",
        "at", "overlaps", "any", "all", "some", "exists", "isnull", "notnull", "escape",
    ];
    w.len() <= 8 && WORDS.iter().any(|k| w.eq_ignore_ascii_case(k))
}

fn is_set_op(w: &str) -> bool {
    ["union", "intersect", "except"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

/// Past the closing quote (a doubled quote stays inside), or the end.
fn skip_quoted(b: &[u8], mut i: usize, q: u8) -> usize {
    while i < b.len() {
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        // E'..' strings may escape a quote with a backslash; treating every backslash as an
        // escape can only end a literal later, never earlier than PostgreSQL would matter for
        // a bound that is checked again by the parser.
        if b[i] == b'\\' && q == b'\'' {
            i += 2;
            continue;
        }
        i += 1;
    }
    b.len()
}

/// Past the end of a (nested, as PostgreSQL allows) block comment.
fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 1usize;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The length of a dollar-quote tag (`$$`, `$tag$`) starting at `i`, if one starts there.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1 - i)
}

#[cfg(test)]
mod tests {
    use super::estimate;

    #[test]
    fn chains_count_and_lists_do_not() {
        assert!(estimate("SELECT 1") <= 2);
        let plus = format!("SELECT {}", vec!["1"; 5000].join("+"));
        assert!(estimate(&plus) >= 4999);
        let ors: Vec<String> = (0..2500).map(|i| format!("id = {i}")).collect();
        assert!(estimate(&format!("SELECT 1 FROM t WHERE {}", ors.join(" OR "))) >= 2499);
        let list: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
        assert!(estimate(&format!("SELECT 1 FROM t WHERE id IN ({})", list.join(","))) < 10);
        let values: Vec<String> = (0..10_000).map(|i| format!("({i}, 'x+y')")).collect();
        assert!(estimate(&format!("INSERT INTO t VALUES {}", values.join(","))) < 10);
        let unions: Vec<&str> = vec!["SELECT 1, 2"; 3000];
        assert!(estimate(&unions.join(" UNION ALL ")) >= 2999);
        let parens = format!("SELECT {}1{}", "(".repeat(300), ")".repeat(300));
        assert!(estimate(&parens) >= 300);
        let nots = format!("SELECT {} true", "NOT ".repeat(1000));
        assert!(estimate(&nots) >= 1000);
    }

    #[test]
    fn literals_and_comments_are_skipped() {
        let s = format!(
            "SELECT '{}', $q${}$q$, \"{}\" /* {} */ -- {}\n",
            "+".repeat(999),
            "+".repeat(999),
            "+".repeat(999),
            "+ /* + */ +".repeat(99),
            "+".repeat(999)
        );
        assert!(estimate(&s) < 10, "{}", estimate(&s));
        assert!(estimate("SELECT 'it''s' + 1") <= 3);
    }
}
