//! Where MySQL/MariaDB and SQLite differ, the rewrite of OneHA's SQL for MySQL. Statements are
//! written for SQLite; these are the only forms they use that MySQL spells differently.
//! Everything else (`RETURNING`, `||`, `"quoted"` identifiers, `LIMIT ?`) is read alike once
//! the session runs with `PIPES_AS_CONCAT,ANSI_QUOTES` (see `my::SQL_MODE`), on MariaDB 10.5+.

/// A statement as MySQL reads it: `?` placeholders, and for each the index of the value it
/// takes from the statement's numbered parameters (`?2 ... ?1 ... ?2` binds values 1, 0, 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Translated {
    pub sql: String,
    pub order: Vec<usize>,
}

/// Splits `sql` into code and quoted parts ('text', "identifier", `identifier`), so rewrites
/// never touch a literal.
fn segments(sql: &str) -> Vec<(bool, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quote: Option<char> = None;
    for (i, c) in sql.char_indices() {
        match quote {
            Some(q) if c == q => {
                out.push((false, &sql[start..i + 1]));
                start = i + 1;
                quote = None;
            }
            Some(_) => {}
            None if matches!(c, '\'' | '"' | '`') => {
                if start < i {
                    out.push((true, &sql[start..i]));
                }
                start = i;
                quote = Some(c);
            }
            None => {}
        }
    }
    if start < sql.len() {
        out.push((quote.is_none(), &sql[start..]));
    }
    out
}

pub(crate) fn translate(sql: &str) -> Translated {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut order = Vec::new();
    let mut sequential = 0;
    for (code, part) in segments(sql) {
        if !code {
            out.push_str(part);
            continue;
        }
        let rewritten = rewrite_code(part);
        let mut chars = rewritten.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '?' {
                out.push(c);
                continue;
            }
            let mut digits = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                digits.push(d);
                chars.next();
            }
            match digits.parse::<usize>() {
                Ok(n) if n > 0 => order.push(n - 1),
                _ => {
                    order.push(sequential);
                    sequential += 1;
                }
            }
            out.push('?');
        }
    }
    Translated { sql: out, order }
}

/// The keyword rewrites, on a part of a statement outside quotes.
fn rewrite_code(code: &str) -> String {
    let mut s = code
        .replace("INSERT OR IGNORE", "INSERT IGNORE")
        .replace("INSERT OR REPLACE", "REPLACE")
        .replace(" AS INTEGER)", " AS SIGNED)");
    // `ON CONFLICT (cols) DO UPDATE SET a = excluded.a` -> `ON DUPLICATE KEY UPDATE a = VALUES(a)`.
    if let Some(at) = s.find("ON CONFLICT") {
        if let Some(set) = s[at..].find("DO UPDATE SET") {
            let end = at + set + "DO UPDATE SET".len();
            s.replace_range(at..end, "ON DUPLICATE KEY UPDATE");
        }
    }
    while let Some(at) = s.find("excluded.") {
        let name_start = at + "excluded.".len();
        let name_end = s[name_start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(s.len(), |n| name_start + n);
        let name = s[name_start..name_end].to_string();
        s.replace_range(at..name_end, &format!("VALUES({name})"));
    }
    s
}

/// The schema, written for SQLite with `{key}` for text columns that are (part of) a key, as
/// MySQL creates it: 64-bit integers, doubles, long text and blobs, indexable keys, InnoDB,
/// and a binary collation that compares as SQLite does.
pub(crate) fn schema(sqlite_schema: &str, collation: &str) -> String {
    let typed = replace_words(
        &sqlite_schema.replace("{key}", "VARCHAR(255)"),
        &[
            ("INTEGER", "BIGINT"),
            ("REAL", "DOUBLE"),
            ("TEXT", "LONGTEXT"),
            ("BLOB", "LONGBLOB"),
        ],
    );
    typed.replace(
        ");",
        &format!(") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation};"),
    )
}

/// Replaces whole words only (`TEXT` but not `LONGTEXT` or `context`).
fn replace_words(s: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(s.len() + 64);
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let to = pairs
            .iter()
            .find(|(from, _)| *from == word.as_str())
            .map_or(word.as_str(), |(_, to)| to);
        out.push_str(to);
        word.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_positional_with_their_values_in_order() {
        let t = translate("UPDATE t SET a = ?2, b = ?3 WHERE oid = ?1 AND c = ?2");
        assert_eq!(t.sql, "UPDATE t SET a = ?, b = ? WHERE oid = ? AND c = ?");
        assert_eq!(t.order, vec![1, 2, 0, 1]);
        let t = translate("SELECT ? , ?");
        assert_eq!(t.order, vec![0, 1]);
    }

    #[test]
    fn literals_are_never_rewritten() {
        let t = translate("UPDATE h SET template = 'A = \"?1\" excluded.x' WHERE oid = ?1");
        assert_eq!(
            t.sql,
            "UPDATE h SET template = 'A = \"?1\" excluded.x' WHERE oid = ?"
        );
        assert_eq!(t.order, vec![0]);
    }

    #[test]
    fn sqlite_only_forms_get_their_mysql_spelling() {
        let t = translate(
            "INSERT INTO pool_control (tablename, last_oid) VALUES ('x', ?1)
             ON CONFLICT (tablename) DO UPDATE SET last_oid = excluded.last_oid",
        );
        assert_eq!(
            t.sql,
            "INSERT INTO pool_control (tablename, last_oid) VALUES ('x', ?)
             ON DUPLICATE KEY UPDATE last_oid = VALUES(last_oid)"
        );
        assert_eq!(
            translate("INSERT OR IGNORE INTO g (a) VALUES (?1)").sql,
            "INSERT IGNORE INTO g (a) VALUES (?)"
        );
        assert_eq!(
            translate("SELECT CAST(ROUND(cpu * 100) AS INTEGER) FROM vm_pool").sql,
            "SELECT CAST(ROUND(cpu * 100) AS SIGNED) FROM vm_pool"
        );
    }

    #[test]
    fn schema_types_are_mysql_types() {
        let s = schema(
            "CREATE TABLE IF NOT EXISTS t (name {key} PRIMARY KEY, n INTEGER, t TEXT, f REAL, b BLOB);",
            "utf8mb4_nopad_bin",
        );
        assert_eq!(
            s,
            "CREATE TABLE IF NOT EXISTS t (name VARCHAR(255) PRIMARY KEY, n BIGINT, t LONGTEXT, \
             f DOUBLE, b LONGBLOB) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin;"
        );
    }
}
