//! Delimited tables (CSV, TSV and the like) as spreadsheets export them: the delimiter detected,
//! quoted fields with doubled quotes and line breaks, CRLF, and the header told from data.

use super::Issue;

/// One record: its fields and the 1-based line it starts on.
pub struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// The delimiter that splits the first lines into the same number of fields (more than one).
pub fn detect_delimiter(text: &str) -> Option<char> {
    let sample: String = text.lines().take(20).collect::<Vec<_>>().join("\n");
    let mut best: Option<(char, usize)> = None;
    for delimiter in ['\t', ',', ';', '|'] {
        let Ok(records) = parse(&sample, delimiter) else {
            continue;
        };
        let records: Vec<&Record> = records.iter().filter(|r| !is_blank(r)).collect();
        let Some(first) = records.first() else {
            continue;
        };
        let width = first.fields.len();
        // A cut sample may end inside a quoted field: judge the records before the last.
        let judged = &records[..records.len().saturating_sub(1).max(1)];
        if width > 1
            && judged.iter().all(|r| r.fields.len() == width)
            && best.is_none_or(|(_, w)| width > w)
        {
            best = Some((delimiter, width));
        }
    }
    best.map(|(d, _)| d)
}

pub fn is_blank(record: &Record) -> bool {
    record.fields.iter().all(|f| f.trim().is_empty())
}

/// Splits `text` into records (RFC 4180 with any delimiter; CRLF or LF line ends).
pub fn parse(text: &str, delimiter: char) -> Result<Vec<Record>, Issue> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut line = 1;
    let mut record_line = 1;
    let mut quoted = false;
    let mut quote_line = 0;
    let mut at_field_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                quoted = true;
                quote_line = line;
                at_field_start = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                fields.push(std::mem::take(&mut field));
                records.push(Record {
                    line: record_line,
                    fields: std::mem::take(&mut fields),
                });
                line += 1;
                record_line = line;
                at_field_start = true;
            }
            _ if c == delimiter => {
                fields.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            _ => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    if quoted {
        return Err(Issue::at(
            quote_line,
            "a quoted field is never closed (a \" is missing)",
        ));
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push(Record {
            line: record_line,
            fields,
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_keep_delimiters_quotes_and_line_breaks() {
        let text = "id,dialogue\r\n1,\"A: \"\"Hi\"\", there\r\nB: yes\"\r\n2,plain\r\n";
        let records = parse(text, ',').unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].fields[1], "A: \"Hi\", there\nB: yes");
        assert_eq!(records[2].line, 4);
        assert_eq!(detect_delimiter(text), Some(','));
        assert_eq!(detect_delimiter("a\tb\n1\t2\n"), Some('\t'));
        assert!(parse("a,\"b\n", ',').is_err());
    }
}
