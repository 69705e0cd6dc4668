//! Delimited tables (CSV, TSV and the like) as spreadsheets export them: the delimiter detected,
//! quoted fields with doubled quotes and line breaks, CRLF, and the header told from data.

use super::Issue;

/// The longest field read, as the longest line.
const MAX_FIELD_BYTES: usize = 16 << 20;

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
    let mut parser = Parser::new(delimiter);
    let mut records = Vec::new();
    // A final line break ends the last line; it does not start another.
    let text = text.strip_suffix('\n').unwrap_or(text);
    for (index, line) in text.split('\n').enumerate() {
        records.extend(parser.feed(index + 1, line.strip_suffix('\r').unwrap_or(line))?);
    }
    parser.finish()?;
    Ok(records)
}

/// A table parser fed one line at a time, so that a file is read as a stream.
pub struct Parser {
    delimiter: char,
    fields: Vec<String>,
    field: String,
    quoted: bool,
    quote_line: usize,
    at_field_start: bool,
    record_line: Option<usize>,
}

impl Parser {
    pub fn new(delimiter: char) -> Self {
        Self {
            delimiter,
            fields: Vec::new(),
            field: String::new(),
            quoted: false,
            quote_line: 0,
            at_field_start: true,
            record_line: None,
        }
    }

    /// Feeds line number `line` (without its line break); returns the records it completes.
    /// A quoted field that grows past 16 MiB is refused: its closing quote is missing, and it
    /// would otherwise take the rest of the file, however large.
    pub fn feed(&mut self, line: usize, text: &str) -> Result<Vec<Record>, Issue> {
        let mut done = Vec::new();
        self.record_line.get_or_insert(line);
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if self.quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        self.field.push('"');
                    }
                    '"' => self.quoted = false,
                    _ => self.field.push(c),
                }
                continue;
            }
            match c {
                '"' if self.at_field_start => {
                    self.quoted = true;
                    self.quote_line = line;
                    self.at_field_start = false;
                }
                '\r' => {
                    done.push(self.end_record());
                    self.record_line = Some(line);
                }
                _ if c == self.delimiter => {
                    self.fields.push(std::mem::take(&mut self.field));
                    self.at_field_start = true;
                }
                _ => {
                    self.field.push(c);
                    self.at_field_start = false;
                }
            }
        }
        if self.quoted {
            if self.field.len() > MAX_FIELD_BYTES {
                return Err(Issue::at(
                    self.quote_line,
                    "a quoted field runs on for more than 16 MiB: its closing \" is probably missing",
                ));
            }
            self.field.push('\n');
        } else {
            done.push(self.end_record());
        }
        Ok(done)
    }

    fn end_record(&mut self) -> Record {
        self.fields.push(std::mem::take(&mut self.field));
        self.at_field_start = true;
        Record {
            line: self.record_line.take().unwrap_or(0),
            fields: std::mem::take(&mut self.fields),
        }
    }

    /// Refuses a quoted field still open at the end of the input.
    pub fn finish(self) -> Result<(), Issue> {
        if self.quoted {
            return Err(Issue::at(
                self.quote_line,
                "a quoted field is never closed (a \" is missing)",
            ));
        }
        Ok(())
    }
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
