//! ROUGE parity with rouge-score 0.1.2, against `fixtures/rouge.json` recorded by
//! `fixtures/make_rouge_fixtures.py`: every per-example precision, recall and F-measure of
//! ROUGE-1/2/L/Lsum, stemmer off and on, within 1e-6; and NLTK's Porter stems word for word.

use std::path::Path;

use dialora_engine::rouge;
use serde_json::Value;

fn fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/rouge.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixtures/rouge.json"))
        .expect("JSON")
}

#[test]
fn porter_stems_match_nltk() {
    let fixture = fixture();
    let stems = fixture["stems"].as_object().unwrap();
    assert!(stems.len() > 3000);
    let wrong: Vec<String> = stems
        .iter()
        .filter(|(word, stem)| rouge::stem(word) != stem.as_str().unwrap())
        .map(|(word, stem)| format!("{word}: {} (nltk {stem})", rouge::stem(word)))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} stems differ, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
}

#[test]
fn every_score_matches_rouge_score() {
    let fixture = fixture();
    let pairs = fixture["pairs"].as_array().unwrap();
    assert!(pairs.len() >= 1000);
    for pair in pairs {
        let (reference, prediction) = (
            pair["reference"].as_str().unwrap(),
            pair["prediction"].as_str().unwrap(),
        );
        for (key, stemmer) in [("plain", false), ("stemmed", true)] {
            let ours = rouge::score(reference, prediction, stemmer);
            for ((name, score), expected) in ours.named().iter().zip(pair[key].as_array().unwrap())
            {
                let expected: Vec<f64> = expected
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                let got = [score.precision, score.recall, score.fmeasure];
                for (g, e) in got.iter().zip(&expected) {
                    assert!(
                        (g - e).abs() < 1e-6,
                        "{name} ({key}) of {prediction:?} against {reference:?}: {got:?}, rouge-score {expected:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn several_references_take_the_best_of_each_type() {
    let references = vec![
        "the cat sat on the mat".to_string(),
        "a dog ran".to_string(),
    ];
    let best = rouge::score_multi(&references, "the dog ran on the mat", false);
    let first = rouge::score(&references[0], "the dog ran on the mat", false);
    let second = rouge::score(&references[1], "the dog ran on the mat", false);
    assert_eq!(
        best.rouge1.fmeasure,
        first.rouge1.fmeasure.max(second.rouge1.fmeasure)
    );
    assert_eq!(
        best.rouge2.fmeasure,
        first.rouge2.fmeasure.max(second.rouge2.fmeasure)
    );
}
