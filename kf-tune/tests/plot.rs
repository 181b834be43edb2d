//! The plots' SVG: well-formed XML, one mark per trial, finite coordinates,
//! escaped user text, a monotone best-so-far line.

use std::collections::BTreeMap;

use kf_tune::plot;
use kf_tune::space::{Distribution, Domain, Param, ParamValue, SearchSpace};
use kf_tune::{Direction, History, TrialState};
use proptest::prelude::*;
use quick_xml::events::Event;

/// One element of a parsed document: its name, attributes (unescaped) and text.
#[derive(Debug)]
struct Element {
    name: String,
    attrs: BTreeMap<String, String>,
    text: String,
}

/// Parses `svg` as XML, failing on anything not well-formed (unbalanced tags,
/// bad attributes, unknown entities); returns its elements in document order.
fn parse(svg: &str) -> Vec<Element> {
    let mut reader = quick_xml::Reader::from_str(svg);
    let mut elements: Vec<Element> = Vec::new();
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut roots = 0;
    loop {
        let event =
            reader.read_event().unwrap_or_else(|e| panic!("not XML at {}: {e}\n{svg}", reader.buffer_position()));
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                if open.is_empty() {
                    roots += 1;
                }
                let name = String::from_utf8(e.name().as_ref().to_vec()).expect("UTF-8 name");
                let mut attrs = BTreeMap::new();
                for attr in e.attributes() {
                    let attr = attr.unwrap_or_else(|err| panic!("bad attribute in <{name}>: {err}"));
                    let key = String::from_utf8(attr.key.as_ref().to_vec()).expect("UTF-8 key");
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::default())
                        .unwrap_or_else(|err| panic!("bad value of {key}: {err}"));
                    assert!(attrs.insert(key.clone(), value.into_owned()).is_none(), "{key} twice in <{name}>");
                }
                elements.push(Element { name: name.clone(), attrs, text: String::new() });
                if matches!(event, Event::Start(_)) {
                    open.push((name, elements.len() - 1));
                }
            }
            Event::End(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).expect("UTF-8 name");
                let (expected, _) = open.pop().unwrap_or_else(|| panic!("</{name}> closes nothing"));
                assert_eq!(name, expected, "mismatched end tag");
            }
            Event::Text(t) => {
                let text = t.decode().expect("UTF-8 text");
                if let Some(&(_, i)) = open.last() {
                    elements[i].text.push_str(&text);
                } else {
                    assert!(text.trim().is_empty(), "text outside the root: {text:?}");
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.decode().expect("UTF-8 entity").as_ref() {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "quot" => '"',
                    "apos" => '\'',
                    other => r.resolve_char_ref().ok().flatten().unwrap_or_else(|| panic!("unknown entity &{other};")),
                };
                let &(_, i) = open.last().expect("an entity outside the root");
                elements[i].text.push(resolved);
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(open.is_empty(), "unclosed elements: {open:?}");
    assert_eq!(roots, 1, "expected one root element");
    assert_eq!(elements[0].name, "svg");
    elements
}

/// Every number in the coordinate attributes, which must all be finite.
fn assert_finite_coordinates(elements: &[Element]) {
    for e in elements {
        for (key, value) in &e.attrs {
            if ["x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r", "width", "height", "points", "d"]
                .contains(&key.as_str())
            {
                assert!(!value.contains("NaN") && !value.contains("inf"), "{key}={value:?} in <{}>", e.name);
                for number in value.split([',', ' ', 'M', 'L']).filter(|s| !s.is_empty()) {
                    let n: f64 =
                        number.parse().unwrap_or_else(|_| panic!("{key}={value:?}: {number:?} is not a number"));
                    assert!(n.is_finite());
                }
            }
        }
        assert!(!e.text.contains("NaN"), "NaN in text of <{}>: {}", e.name, e.text);
    }
}

fn with_class<'a>(elements: &'a [Element], class: &str) -> Vec<&'a Element> {
    elements.iter().filter(|e| e.attrs.get("class").is_some_and(|c| c.split(' ').any(|w| w == class))).collect()
}

fn points(e: &Element) -> Vec<(f64, f64)> {
    e.attrs["points"]
        .split(' ')
        .map(|p| {
            let (x, y) = p.split_once(',').expect("x,y");
            (x.parse().expect("x"), y.parse().expect("y"))
        })
        .collect()
}

fn space() -> SearchSpace {
    SearchSpace::new(vec![
        Param::new("lr", Domain::Double { low: 1e-4, high: 0.1, step: None, distribution: Distribution::LogUniform })
            .expect("a valid space"),
        Param::new("layers", Domain::Int { low: 1, high: 8, step: 1, distribution: Distribution::Uniform })
            .expect("a valid space"),
        Param::new("batch", Domain::Discrete { values: vec![64.0, 16.0, 32.0] }).expect("a valid space"),
        Param::new("optimizer", Domain::Categorical { choices: vec!["sgd".into(), "adam".into(), "ftrl".into()] })
            .expect("a valid space"),
    ])
    .expect("a valid space")
}

fn assignment(lr: f64, layers: i64, batch: f64, optimizer: usize) -> Vec<ParamValue> {
    vec![ParamValue::Float(lr), ParamValue::Int(layers), ParamValue::Float(batch), ParamValue::Category(optimizer)]
}

#[test]
fn one_point_per_completed_trial_and_one_cross_per_failure() {
    let mut history = History::new(Direction::Minimize);
    history.push(assignment(0.01, 2, 16.0, 0), TrialState::Completed(0.5));
    history.push(assignment(0.001, 4, 32.0, 1), TrialState::Failed);
    history.push(assignment(0.05, 8, 64.0, 2), TrialState::Completed(0.2));
    history.push(assignment(0.002, 1, 64.0, 1), TrialState::Completed(f64::NAN));
    history.push(assignment(0.02, 3, 16.0, 0), TrialState::Pending);
    history.push(assignment(0.03, 5, 32.0, 1), TrialState::Completed(0.3));
    let svg = plot::render(&space(), &history, "loss");
    let elements = parse(&svg);
    assert_finite_coordinates(&elements);
    let trials: Vec<&str> = with_class(&elements, "trial").iter().map(|e| e.attrs["data-trial"].as_str()).collect();
    assert_eq!(trials, ["0", "2", "5"]);
    let failed: Vec<&str> = with_class(&elements, "failed").iter().map(|e| e.attrs["data-trial"].as_str()).collect();
    assert_eq!(failed, ["1", "3"], "a NaN objective is a failure");
    // One polyline per completed trial over 4 parameters + the objective; the best last, in its own class.
    let lines = with_class(&elements, "trial-line");
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| points(l).len() == 5));
    let best = with_class(&elements, "best");
    assert_eq!(best.len(), 1);
    assert_eq!(best[0].attrs["data-trial"], "2");
    assert_eq!(lines.last().unwrap().attrs["data-trial"], "2", "the best trial is drawn on top");
    // Axis titles, categorical labels and log ticks are there.
    let texts: Vec<&str> = elements.iter().filter(|e| e.name == "text").map(|e| e.text.as_str()).collect();
    for expected in [
        "lr",
        "layers",
        "batch",
        "optimizer",
        "loss",
        "sgd",
        "adam",
        "ftrl",
        "1e-4",
        "0.001",
        "0.01",
        "0.1",
        "(log)",
        "16",
        "32",
        "64",
    ] {
        assert!(texts.contains(&expected), "no text {expected:?} in {texts:?}");
    }
    // Discrete values ascend up the axis whatever the list's order: 16 lowest (largest y).
    let y_of = |label: &str| {
        elements.iter().find(|e| e.name == "text" && e.text == label).unwrap().attrs["y"].parse::<f64>().unwrap()
    };
    assert!(y_of("16") > y_of("32") && y_of("32") > y_of("64"));
}

fn best_so_far(elements: &[Element]) -> Vec<(f64, f64)> {
    points(
        elements
            .iter()
            .find(|e| e.attrs.get("id").map(String::as_str) == Some("best-so-far"))
            .expect("a best-so-far line"),
    )
}

#[test]
fn the_best_so_far_line_is_monotone_in_the_direction() {
    let values = [0.5, 0.7, 0.3, 0.4, 0.1, 0.9];
    for direction in [Direction::Minimize, Direction::Maximize] {
        let mut history = History::new(direction);
        for (i, v) in values.iter().enumerate() {
            history.push(assignment(0.01, i as i64 + 1, 16.0, 0), TrialState::Completed(*v));
        }
        let elements = parse(&plot::render(&space(), &history, "acc"));
        let line = best_so_far(&elements);
        // SVG y grows downwards: a falling value rises in y.
        for pair in line.windows(2) {
            assert!(pair[0].0 <= pair[1].0, "x goes forward");
            match direction {
                Direction::Minimize => assert!(pair[0].1 <= pair[1].1, "{line:?}"),
                Direction::Maximize => assert!(pair[0].1 >= pair[1].1, "{line:?}"),
            }
        }
        let circles = with_class(&elements, "trial");
        let y_of = |trial: &str| {
            circles.iter().find(|c| c.attrs["data-trial"] == trial).unwrap().attrs["cy"].parse::<f64>().unwrap()
        };
        let best_trial = if direction == Direction::Minimize { "4" } else { "5" };
        assert_eq!(line.last().unwrap().1, y_of(best_trial), "the line ends at the best value");
    }
}

#[test]
fn user_text_is_escaped() {
    let space = SearchSpace::new(vec![
        Param::new(
            "<script>alert(1)</script>",
            Domain::Double { low: 0.0, high: 1.0, step: None, distribution: Distribution::Uniform },
        )
        .unwrap(),
        Param::new("kind", Domain::Categorical { choices: vec!["a&b".into(), "\"q\" 'x'".into(), "</svg>".into()] })
            .unwrap(),
    ])
    .unwrap();
    let mut history = History::new(Direction::Maximize);
    history.push(vec![ParamValue::Float(0.2), ParamValue::Category(2)], TrialState::Completed(1.0));
    let svg = plot::render(&space, &history, "m<&>\u{1}\"");
    assert!(!svg.contains("<script>") && !svg.contains("</svg>\n</svg>"));
    let elements = parse(&svg);
    let texts: Vec<&str> = elements.iter().filter(|e| e.name == "text").map(|e| e.text.as_str()).collect();
    assert!(texts.contains(&"<script>alert(1)<…"), "{texts:?}");
    for label in ["a&b", "\"q\" 'x'", "</svg>", "m<&>\""] {
        assert!(texts.contains(&label), "no {label:?} in {texts:?}");
    }
}

#[test]
fn empty_single_and_all_failed_histories_give_a_document_with_a_message() {
    let one = {
        let mut h = History::new(Direction::Minimize);
        h.push(assignment(0.01, 2, 16.0, 0), TrialState::Completed(0.0));
        h
    };
    let failed = {
        let mut h = History::new(Direction::Minimize);
        h.push(assignment(0.01, 2, 16.0, 0), TrialState::Failed);
        h.push(assignment(0.01, 3, 16.0, 0), TrialState::Failed);
        h
    };
    let running = {
        let mut h = History::new(Direction::Minimize);
        h.push(assignment(0.01, 2, 16.0, 0), TrialState::Pending);
        h
    };
    for (history, message) in [
        (History::new(Direction::Minimize), Some("no trials yet")),
        (running, Some("no completed trials yet (1 running)")),
        (failed, Some("no completed trials: all 2 finished trials failed")),
        (one, None),
    ] {
        let elements = parse(&plot::render(&space(), &history, "loss"));
        assert_finite_coordinates(&elements);
        let failures = history.trials.iter().filter(|t| t.state == TrialState::Failed).count();
        assert_eq!(with_class(&elements, "failed").len(), failures, "failures are marked even without a value axis");
        let messages: Vec<&str> = with_class(&elements, "message").iter().map(|e| e.text.as_str()).collect();
        match message {
            Some(m) => assert_eq!(messages, [m, m]),
            None => {
                assert!(messages.is_empty());
                assert_eq!(with_class(&elements, "trial").len(), 1);
                assert_eq!(best_so_far(&elements).len(), 2);
            }
        }
    }
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    let mut history = History::new(Direction::Minimize);
    history.push(assignment(0.01, 2, 16.0, 0), TrialState::Completed(0.5));
    history.push(assignment(0.02, 2, 16.0, 0), TrialState::Completed(0.5));
    assert_eq!(plot::render(&space(), &history, "loss"), plot::render(&space(), &history, "loss"));
}

fn arb_state() -> impl Strategy<Value = TrialState> {
    prop_oneof![
        Just(TrialState::Failed),
        Just(TrialState::Pending),
        Just(TrialState::Completed(f64::NAN)),
        Just(TrialState::Completed(f64::INFINITY)),
        (-1e300f64..1e300).prop_map(TrialState::Completed),
        (-1.0f64..1.0).prop_map(TrialState::Completed),
        (0usize..3).prop_map(|k| TrialState::Completed(k as f64)),
        Just(TrialState::Completed(f64::MAX)),
        Just(TrialState::Completed(-f64::MAX)),
    ]
}

proptest! {
    #[test]
    fn random_histories_give_valid_xml_with_finite_coordinates(
        trials in prop::collection::vec((1e-4f64..0.1, 1i64..=8, 0usize..3, 0usize..3, arb_state()), 0..40),
        maximize in any::<bool>(),
        metric in "[a-z<>&\"' ]{0,12}",
    ) {
        let direction = if maximize { Direction::Maximize } else { Direction::Minimize };
        let mut history = History::new(direction);
        for (lr, layers, batch, optimizer, state) in &trials {
            history.push(assignment(*lr, *layers, [16.0, 32.0, 64.0][*batch], *optimizer), *state);
        }
        let elements = parse(&plot::render(&space(), &history, &metric));
        assert_finite_coordinates(&elements);
        let completed = trials.iter().filter(|t| matches!(t.4, TrialState::Completed(v) if v.is_finite())).count();
        prop_assert_eq!(with_class(&elements, "trial").len(), completed);
        prop_assert_eq!(with_class(&elements, "trial-line").len(), completed);
    }
}
