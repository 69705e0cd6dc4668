//! The Porter stemmer exactly as NLTK's `PorterStemmer()` (its default NLTK_EXTENSIONS mode), which
//! rouge-score uses when stemming is on. Words are ASCII lowercase letters and digits by the time
//! they get here (the ROUGE tokenizer keeps nothing else), so they are handled as bytes.

/// NLTK's irregular forms.
const IRREGULAR: [(&str, &str); 16] = [
    ("sky", "sky"),
    ("skies", "sky"),
    ("dying", "die"),
    ("lying", "lie"),
    ("tying", "tie"),
    ("news", "news"),
    ("innings", "inning"),
    ("inning", "inning"),
    ("outings", "outing"),
    ("outing", "outing"),
    ("cannings", "canning"),
    ("canning", "canning"),
    ("howe", "howe"),
    ("proceed", "proceed"),
    ("exceed", "exceed"),
    ("succeed", "succeed"),
];

fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u')
}

/// NLTK's `_is_consonant`: a `y` after a run of `y`s alternates.
fn is_consonant(word: &[u8], mut i: usize) -> bool {
    if is_vowel(word[i]) {
        return false;
    }
    if word[i] == b'y' {
        let mut negate = false;
        while i > 0 && word[i] == b'y' {
            negate = !negate;
            i -= 1;
        }
        return is_vowel(word[i]) == negate;
    }
    true
}

/// NLTK's `_consonant_flags`: `y` is a consonant at the start or after a vowel.
fn consonant_flags(word: &[u8]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(word.len());
    for (i, &c) in word.iter().enumerate() {
        let flag = if is_vowel(c) {
            false
        } else if c == b'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(flag);
    }
    flags
}

/// The number of vowel-consonant sequences, m in [C](VC)^m[V].
fn measure(stem: &[u8]) -> usize {
    let flags = consonant_flags(stem);
    flags.windows(2).filter(|w| !w[0] && w[1]).count()
}

fn contains_vowel(stem: &[u8]) -> bool {
    !consonant_flags(stem).iter().all(|&c| c)
}

fn ends_double_consonant(word: &[u8]) -> bool {
    let n = word.len();
    n >= 2 && word[n - 1] == word[n - 2] && is_consonant(word, n - 1)
}

fn ends_cvc(word: &[u8]) -> bool {
    let n = word.len();
    (n >= 3
        && is_consonant(word, n - 3)
        && !is_consonant(word, n - 2)
        && is_consonant(word, n - 1)
        && !matches!(word[n - 1], b'w' | b'x' | b'y'))
        || (n == 2 && !is_consonant(word, 0) && is_consonant(word, 1))
}

/// A rule's condition on the stem left when its suffix is removed.
type Condition<'a> = &'a dyn Fn(&[u8]) -> bool;

/// A suffix rule: `suffix` (or `*d`, a double consonant) becomes `replacement` when `condition`.
struct Rule<'a> {
    suffix: &'a [u8],
    replacement: &'a [u8],
    condition: Option<Condition<'a>>,
}

fn rule<'a>(suffix: &'a str, replacement: &'a str, condition: Option<Condition<'a>>) -> Rule<'a> {
    Rule {
        suffix: suffix.as_bytes(),
        replacement: replacement.as_bytes(),
        condition,
    }
}

/// NLTK's `_apply_rule_list`: the first rule whose suffix matches decides.
fn apply_rules(word: &[u8], rules: &[Rule]) -> Vec<u8> {
    for rule in rules {
        if rule.suffix == b"*d" {
            if ends_double_consonant(word) {
                let stem = &word[..word.len() - 2];
                return if rule.condition.as_ref().is_none_or(|c| c(stem)) {
                    [stem, rule.replacement].concat()
                } else {
                    word.to_vec()
                };
            }
            continue;
        }
        if word.ends_with(rule.suffix) {
            let stem = &word[..word.len() - rule.suffix.len()];
            return if rule.condition.as_ref().is_none_or(|c| c(stem)) {
                [stem, rule.replacement].concat()
            } else {
                word.to_vec()
            };
        }
    }
    word.to_vec()
}

fn positive_measure(stem: &[u8]) -> bool {
    measure(stem) > 0
}

fn step1a(word: &[u8]) -> Vec<u8> {
    if word.ends_with(b"ies") && word.len() == 4 {
        return [&word[..1], b"ie"].concat();
    }
    apply_rules(
        word,
        &[
            rule("sses", "ss", None),
            rule("ies", "i", None),
            rule("ss", "ss", None),
            rule("s", "", None),
        ],
    )
}

fn step1b(word: &[u8]) -> Vec<u8> {
    if let Some(stem) = word.strip_suffix(b"ied") {
        return [
            stem,
            if word.len() == 4 {
                b"ie".as_slice()
            } else {
                b"i"
            },
        ]
        .concat();
    }
    if let Some(stem) = word.strip_suffix(b"eed") {
        return if measure(stem) > 0 {
            [stem, b"ee"].concat()
        } else {
            word.to_vec()
        };
    }
    let Some(intermediate) = [b"ed".as_slice(), b"ing"].iter().find_map(|suffix| {
        word.strip_suffix(*suffix)
            .filter(|stem| contains_vowel(stem))
    }) else {
        return word.to_vec();
    };
    let last = [*intermediate.last().unwrap_or(&b' ')];
    let last_str = std::str::from_utf8(&last).unwrap_or(" ");
    let keeps_double = |_: &[u8]| !matches!(last[0], b'l' | b's' | b'z');
    let add_e = |stem: &[u8]| measure(stem) == 1 && ends_cvc(stem);
    apply_rules(
        intermediate,
        &[
            rule("at", "ate", None),
            rule("bl", "ble", None),
            rule("iz", "ize", None),
            rule("*d", last_str, Some(&keeps_double)),
            rule("", "e", Some(&add_e)),
        ],
    )
}

fn step1c(word: &[u8]) -> Vec<u8> {
    let condition = |stem: &[u8]| stem.len() > 1 && is_consonant(stem, stem.len() - 1);
    apply_rules(word, &[rule("y", "i", Some(&condition))])
}

fn step2(word: &[u8]) -> Vec<u8> {
    if let Some(stem) = word.strip_suffix(b"alli")
        && positive_measure(stem)
    {
        return step2(&[stem, b"al"].concat());
    }
    let m: Condition = &positive_measure;
    let logi = |_: &[u8]| positive_measure(&word[..word.len() - 3]);
    apply_rules(
        word,
        &[
            rule("ational", "ate", Some(m)),
            rule("tional", "tion", Some(m)),
            rule("enci", "ence", Some(m)),
            rule("anci", "ance", Some(m)),
            rule("izer", "ize", Some(m)),
            rule("bli", "ble", Some(m)),
            rule("alli", "al", Some(m)),
            rule("entli", "ent", Some(m)),
            rule("eli", "e", Some(m)),
            rule("ousli", "ous", Some(m)),
            rule("ization", "ize", Some(m)),
            rule("ation", "ate", Some(m)),
            rule("ator", "ate", Some(m)),
            rule("alism", "al", Some(m)),
            rule("iveness", "ive", Some(m)),
            rule("fulness", "ful", Some(m)),
            rule("ousness", "ous", Some(m)),
            rule("aliti", "al", Some(m)),
            rule("iviti", "ive", Some(m)),
            rule("biliti", "ble", Some(m)),
            rule("fulli", "ful", Some(m)),
            rule("logi", "log", Some(&logi)),
        ],
    )
}

fn step3(word: &[u8]) -> Vec<u8> {
    let m: Condition = &positive_measure;
    apply_rules(
        word,
        &[
            rule("icate", "ic", Some(m)),
            rule("ative", "", Some(m)),
            rule("alize", "al", Some(m)),
            rule("iciti", "ic", Some(m)),
            rule("ical", "ic", Some(m)),
            rule("ful", "", Some(m)),
            rule("ness", "", Some(m)),
        ],
    )
}

fn step4(word: &[u8]) -> Vec<u8> {
    let gt1 = |stem: &[u8]| measure(stem) > 1;
    let m: Condition = &gt1;
    let ion = |stem: &[u8]| measure(stem) > 1 && matches!(stem.last(), Some(b's' | b't'));
    apply_rules(
        word,
        &[
            rule("al", "", Some(m)),
            rule("ance", "", Some(m)),
            rule("ence", "", Some(m)),
            rule("er", "", Some(m)),
            rule("ic", "", Some(m)),
            rule("able", "", Some(m)),
            rule("ible", "", Some(m)),
            rule("ant", "", Some(m)),
            rule("ement", "", Some(m)),
            rule("ment", "", Some(m)),
            rule("ent", "", Some(m)),
            rule("ion", "", Some(&ion)),
            rule("ou", "", Some(m)),
            rule("ism", "", Some(m)),
            rule("ate", "", Some(m)),
            rule("iti", "", Some(m)),
            rule("ous", "", Some(m)),
            rule("ive", "", Some(m)),
            rule("ize", "", Some(m)),
        ],
    )
}

fn step5a(word: &[u8]) -> Vec<u8> {
    if let Some(stem) = word.strip_suffix(b"e") {
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            return stem.to_vec();
        }
    }
    word.to_vec()
}

fn step5b(word: &[u8]) -> Vec<u8> {
    let condition = |_: &[u8]| measure(&word[..word.len() - 1]) > 1;
    apply_rules(word, &[rule("ll", "l", Some(&condition))])
}

/// The stem of a lowercase ASCII word.
pub fn stem(word: &str) -> String {
    if let Some((_, stem)) = IRREGULAR.iter().find(|(form, _)| *form == word) {
        return (*stem).to_string();
    }
    if word.len() <= 2 {
        return word.to_string();
    }
    let mut stem = word.as_bytes().to_vec();
    for step in [step1a, step1b, step1c, step2, step3, step4, step5a, step5b] {
        stem = step(&stem);
    }
    String::from_utf8(stem).unwrap_or_else(|_| word.to_string())
}
