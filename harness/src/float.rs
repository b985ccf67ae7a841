//! Reading back f64 fields that may be NaN or infinite (a percentile of no requests, a rate over
//! no time): JSON has no such numbers, serde_json writes them as null, and this reads null back
//! as NaN.

use serde::{Deserialize, Deserializer};

pub fn nan_if_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Option::<f64>::deserialize(d).map(|v| v.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct S {
        #[serde(deserialize_with = "super::nan_if_null")]
        v: f64,
    }

    #[test]
    fn a_nan_written_as_null_reads_back_as_nan() {
        let text = serde_json::to_string(&S { v: f64::NAN }).unwrap();
        assert_eq!(text, r#"{"v":null}"#);
        assert!(serde_json::from_str::<S>(&text).unwrap().v.is_nan());
        assert_eq!(serde_json::from_str::<S>(r#"{"v":2.5}"#).unwrap().v, 2.5);
    }
}
