//! Transcripts: WebVTT (Teams' `<v Name>` voice tags, Zoom's `Name: text`, cue numbers, NOTE,
//! STYLE and REGION blocks, multi-line cues), SRT, and plain `Name: text` lines with continuation
//! lines. A transcript is one dialogue; consecutive cues of one speaker make one turn.

use super::{Issue, Turn};

/// The turns of a WebVTT file, or the line of its first unusable part.
pub fn parse_vtt(text: &str) -> Result<Vec<Turn>, Issue> {
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .first()
        .map(|l| l.trim_start_matches('\u{feff}'))
        .unwrap_or("");
    if !header.starts_with("WEBVTT") {
        return Err(Issue::at(1, "a WebVTT file must start with WEBVTT"));
    }
    let mut turns = Vec::new();
    // The first block is the header.
    for (block_start, block) in blocks(&lines).into_iter().skip(1) {
        let first = block[0].trim();
        if first.starts_with("NOTE") || first == "STYLE" || first == "REGION" {
            continue;
        }
        // An optional cue identifier precedes the timing line.
        let timing = if first.contains("-->") { 0 } else { 1 };
        let Some(timing_line) = block.get(timing) else {
            return Err(Issue::at(block_start + 1, "a cue without a timing line"));
        };
        check_timing(timing_line, '.').map_err(|m| Issue::at(block_start + timing + 1, m))?;
        let cue_lines = &block[timing + 1..];
        add_cue(&mut turns, cue_lines, true);
    }
    Ok(turns)
}

/// The turns of an SRT file, or the line of its first unusable part.
pub fn parse_srt(text: &str) -> Result<Vec<Turn>, Issue> {
    let lines: Vec<&str> = text.lines().collect();
    let mut turns = Vec::new();
    for (block_start, block) in blocks(&lines) {
        let number = block[0].trim().trim_start_matches('\u{feff}');
        let timing = if number.chars().all(|c| c.is_ascii_digit()) && !number.is_empty() {
            1
        } else if block[0].contains("-->") {
            0
        } else {
            return Err(Issue::at(
                block_start + 1,
                "expected a subtitle number or a timing line",
            ));
        };
        let Some(timing_line) = block.get(timing) else {
            return Err(Issue::at(
                block_start + 1,
                "a subtitle without a timing line",
            ));
        };
        check_timing(timing_line, ',').map_err(|m| Issue::at(block_start + timing + 1, m))?;
        add_cue(&mut turns, &block[timing + 1..], false);
    }
    Ok(turns)
}

/// The runs of non-blank lines, each with the index of its first line.
fn blocks<'a>(lines: &'a [&'a str]) -> Vec<(usize, &'a [&'a str])> {
    let mut found = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if lines[index].trim().is_empty() {
            index += 1;
            continue;
        }
        let start = index;
        while index < lines.len() && !lines[index].trim().is_empty() {
            index += 1;
        }
        found.push((start, &lines[start..index]));
    }
    found
}

/// The turns of a plain transcript: `Name: text` starts a turn, other lines continue the last one.
pub fn parse_plain(text: &str) -> Vec<Turn> {
    let mut turns: Vec<Turn> = Vec::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() {
            continue;
        }
        match split_speaker(line) {
            Some((speaker, said)) => push_turn(&mut turns, Some(speaker), said),
            None => match turns.last_mut() {
                Some(last) => {
                    last.text.push(' ');
                    last.text.push_str(line);
                }
                None => push_turn(&mut turns, None, line),
            },
        }
    }
    turns
}

/// Whether most non-empty lines of `text` start with a speaker.
pub fn looks_like_plain_transcript(text: &str) -> bool {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(50)
        .collect();
    let with_speaker = lines
        .iter()
        .filter(|l| split_speaker(l.trim()).is_some())
        .count();
    !lines.is_empty() && with_speaker * 2 >= lines.len()
}

/// `Name: text` to `(Name, text)`: a name starts with a letter or `#`, has at most 40 characters
/// and no sentence punctuation.
pub fn split_speaker(line: &str) -> Option<(&str, &str)> {
    let (name, rest) = line.split_once(':')?;
    let name = name.trim();
    let first = name.chars().next()?;
    let plausible = (first.is_alphabetic() || first == '#')
        && name.chars().count() <= 40
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || " #.-_'()".contains(c))
        && !rest.starts_with("//");
    plausible.then(|| (name, rest.trim()))
}

/// `hh:mm:ss.ttt --> hh:mm:ss.ttt [settings]` (hours optional in WebVTT; `,` before the
/// milliseconds in SRT).
fn check_timing(line: &str, separator: char) -> Result<(), String> {
    let (start, rest) = line
        .split_once("-->")
        .ok_or_else(|| format!("\"{}\" is not a timing line (start --> end)", line.trim()))?;
    let end = rest.split_whitespace().next().unwrap_or("");
    for stamp in [start.trim(), end] {
        if !valid_timestamp(stamp, separator) {
            return Err(format!("broken timestamp \"{stamp}\""));
        }
    }
    Ok(())
}

fn valid_timestamp(stamp: &str, separator: char) -> bool {
    let Some((clock, millis)) = stamp.rsplit_once(separator) else {
        return false;
    };
    let parts: Vec<&str> = clock.split(':').collect();
    let digits = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_digit());
    let hours_ok = |s: &str| !s.is_empty() && s.len() <= 3 && s.chars().all(|c| c.is_ascii_digit());
    let sexagesimal = |s: &str| digits(s, 2) && s < "60";
    digits(millis, 3)
        && match parts.as_slice() {
            [minutes, seconds] => sexagesimal(minutes) && sexagesimal(seconds),
            [hours, minutes, seconds] => {
                hours_ok(hours) && sexagesimal(minutes) && sexagesimal(seconds)
            }
            _ => false,
        }
}

/// Adds one cue's text: its speaker from a voice tag (WebVTT) or a `Name:` prefix.
fn add_cue(turns: &mut Vec<Turn>, lines: &[&str], voice_tags: bool) {
    let mut speaker: Option<String> = None;
    let mut parts = Vec::new();
    for line in lines {
        let line = line.trim();
        if voice_tags && let Some(name) = voice_name(line) {
            speaker = Some(name);
        }
        let text = decode_entities(&strip_tags(line));
        let text = text.trim();
        if !text.is_empty() {
            parts.push(text.to_string());
        }
    }
    let mut text = parts.join(" ");
    if speaker.is_none()
        && let Some((name, said)) = split_speaker(&text)
    {
        speaker = Some(name.to_string());
        text = said.to_string();
    }
    if !text.is_empty() {
        push_turn(turns, speaker.as_deref(), &text);
    }
}

/// Appends to the last turn when the speaker continues, else starts a turn.
fn push_turn(turns: &mut Vec<Turn>, speaker: Option<&str>, text: &str) {
    if let Some(last) = turns.last_mut()
        && last.speaker.as_deref() == speaker
        && speaker.is_some()
    {
        last.text.push(' ');
        last.text.push_str(text);
        return;
    }
    turns.push(Turn {
        speaker: speaker.map(str::to_string),
        text: text.to_string(),
    });
}

/// The name of a `<v Name>` or `<v.class Name>` voice tag.
fn voice_name(line: &str) -> Option<String> {
    let start = line.find("<v")?;
    let rest = &line[start + 2..];
    if !rest.starts_with([' ', '.', '\t']) {
        return None;
    }
    let end = rest.find('>')?;
    let inside = rest[..end].trim_start_matches(|c: char| c == '.' || c.is_alphanumeric());
    let name = inside.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn strip_tags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_tag = false;
    for c in line.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn decode_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&lrm;", "")
        .replace("&rlm;", "")
        .replace("&amp;", "&")
}
