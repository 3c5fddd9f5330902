//! Reading stored JSON (tokens, checkpoints, client secrets) with errors that say what is
//! wrong and where, and never quote the value.
//!
//! serde's own messages quote what they found (`invalid type: string "{\"token\": …}"`),
//! and a stored value is a secret. So the value is read in two steps: as JSON (whose syntax
//! errors are reduced to a line and a column), then as the type, whose errors are reduced to
//! the path of the field that did not fit (`serde_path_to_error`) and whether it was missing.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// What kind of JSON `value` is, in words.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A syntax error as a line and a column, nothing of the text.
pub fn syntax_problem(error: &serde_json::Error) -> String {
    let at = format!("line {}, column {}", error.line(), error.column());
    match error.classify() {
        serde_json::error::Category::Eof => format!("cut short at {at}"),
        _ => format!("malformed JSON at {at}"),
    }
}

/// Reads `raw` as JSON and checks it is an object (naming what it is otherwise, and saying so
/// when it is a JSON string holding JSON: a value encoded twice).
pub fn object(raw: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(raw).map_err(|e| syntax_problem(&e))?;
    match &value {
        Value::Object(_) => Ok(value),
        Value::String(inner) if serde_json::from_str::<Value>(inner).is_ok_and(|v| v.is_object()) => Err(
            "a JSON string holding JSON, not the object itself: it was encoded twice (json.dumps of what to_json() already returned, say); store the object".into(),
        ),
        other => Err(format!("{}, not an object", kind(other))),
    }
}

/// Reads `raw` as a `T`, which is a JSON object.
pub fn parse<T: DeserializeOwned>(raw: &str) -> Result<T, String> {
    let value = object(raw)?;
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        // serde's message quotes what it found; only a missing field's name (the type's own
        // word, never the value's) is kept.
        let message = error.inner().to_string();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(field, _)| field.to_owned());
        match (missing, path.as_str()) {
            (Some(field), ".") => format!("the field {field} is missing"),
            (Some(field), path) => format!("the field {field} is missing in {path}"),
            (None, ".") => "a field has a value of the wrong type or form".to_owned(),
            (None, path) => format!("{path} has a value of the wrong type or form"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Shape {
        name: String,
        count: u32,
        #[serde(default)]
        tags: Vec<String>,
    }

    /// Every serde error shape a stored value can provoke: none quotes the value.
    #[test]
    fn no_problem_quotes_the_value() {
        let secret = "SECRETVALUE";
        let cases = [
            secret.to_owned(),
            format!("\"{secret}\""),
            format!("[\"{secret}\"]"),
            format!("{{\"name\": \"{secret}\", \"count\": \"{secret}\"}}"),
            format!("{{\"name\": 5, \"count\": 1, \"x\": \"{secret}\"}}"),
            format!("{{\"name\": \"{secret}\"}}"),
            format!("{{\"name\": \"{secret}\", \"count\": 1, \"tags\": \"{secret}\"}}"),
            format!("{{\"name\": \"{secret}\", \"count\": -1}}"),
            format!("{{\"name\": \"{secret}\", \"count\": 1e999}}"),
            format!("{{\"name\": \"{secret}"),
            format!("{{\"name\": \"{secret}\",, }}"),
            format!("{{\"name\": \"\\q{secret}\"}}"),
            serde_json::to_string(&format!("{{\"name\": \"{secret}\"}}")).unwrap(),
            format!("{{\"name\": \"{secret}\", \"count\": 1}} {secret}"),
            format!("{{\"{secret}\" {secret}}}"),
        ];
        for raw in &cases {
            let problem = parse::<Shape>(raw).unwrap_err();
            assert!(!problem.contains(secret), "{raw} -> {problem}");
            assert!(!problem.is_empty());
        }
    }

    #[test]
    fn problems_say_where() {
        let twice = serde_json::to_string(r#"{"name": "a", "count": 1}"#).unwrap();
        assert!(
            parse::<Shape>(&twice)
                .unwrap_err()
                .contains("encoded twice")
        );
        assert_eq!(
            parse::<Shape>("[1]").unwrap_err(),
            "an array, not an object"
        );
        assert_eq!(
            parse::<Shape>(r#"{"name": "a", "count": "x"}"#).unwrap_err(),
            "count has a value of the wrong type or form"
        );
        assert_eq!(
            parse::<Shape>(r#"{"name": "a"}"#).unwrap_err(),
            "the field count is missing"
        );
        assert_eq!(
            parse::<Shape>("{\"name\": ").unwrap_err(),
            "cut short at line 1, column 9"
        );
    }
}
