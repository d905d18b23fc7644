//! A small RFC 4180 CSV reader: enough for component ledgers exported from spreadsheets.
//!
//! Written here rather than pulling the `csv` crate: the ledgers are small and this shape is all they
//! need. Fields are separated by commas and records by LF or CRLF; a field in double quotes may hold
//! commas, line breaks and doubled quotes (`""`). A UTF-8 byte-order mark (Excel writes one) is
//! skipped and blank lines are ignored. Every record keeps the line it starts on, for error messages. A
//! stray quote inside an unquoted field is taken literally; text after a closing quote marks the
//! record malformed (the caller rejects that record alone); a quote never closed is an error for the
//! whole text, since nothing after it can be trusted.

/// One record and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub line: usize,
    pub fields: Vec<String>,
    /// Why the record is malformed, if it is.
    pub problem: Option<String>,
}

/// A quoted field that never closes, opened on this line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnclosedQuote {
    pub line: usize,
}

pub(crate) fn parse(text: &str) -> Result<Vec<Record>, UnclosedQuote> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let mut record = Record {
            line,
            fields: Vec::new(),
            problem: None,
        };
        let mut field = String::new();
        let mut quoted = false;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return Err(UnclosedQuote { line: record.line });
                }
                break;
            };
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => {
                        quoted = false;
                        if !matches!(chars.peek(), None | Some(',' | '\n' | '\r')) {
                            record.problem.get_or_insert_with(|| {
                                format!(
                                    "text after the closing quote of field {}",
                                    record.fields.len() + 1
                                )
                            });
                        }
                    }
                    '\n' => {
                        line += 1;
                        field.push(c);
                    }
                    _ => field.push(c),
                }
                continue;
            }
            match c {
                '"' if field.is_empty() => quoted = true,
                ',' => record.fields.push(std::mem::take(&mut field)),
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    line += 1;
                    break;
                }
                _ => field.push(c),
            }
        }
        record.fields.push(field);
        let blank = record.fields.len() == 1 && record.fields[0].trim().is_empty();
        if !blank {
            records.push(record);
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        parse(text).unwrap().into_iter().map(|r| r.fields).collect()
    }

    #[test]
    fn quotes_commas_line_breaks_and_bom() {
        let text = "\u{feff}a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\n\"two\nlines\",z\n";
        assert_eq!(
            fields(text),
            [
                vec!["a", "b"],
                vec!["x, y", "say \"hi\""],
                vec!["two\nlines", "z"]
            ]
        );
        let lines: Vec<usize> = parse(text).unwrap().iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 2, 4]);
    }

    #[test]
    fn empty_fields_and_no_final_newline() {
        assert_eq!(fields("a,,c\n,"), [vec!["a", "", "c"], vec!["", ""]]);
    }

    #[test]
    fn malformed_record_and_unclosed_quote() {
        let records = parse("\"a\"b,c\nok,1\n").unwrap();
        assert!(records[0].problem.is_some());
        assert_eq!(records[1].problem, None);
        assert_eq!(parse("a\n\"never\nclosed"), Err(UnclosedQuote { line: 2 }));
    }
}
