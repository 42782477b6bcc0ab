//! Settings the way both services take them: by environment name, from a TOML file whose keys
//! are those names in any case, under what the command line and the environment give. The
//! result is a plain map so each service validates it into its typed config in one place
//! (and its tests can build configs from maps).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::Path;
use std::str::FromStr;

use crate::Error;

/// The settings of the TOML file at `file` (if any), overridden by every `given` value that is
/// set, keyed by environment name.
pub fn layered(
    file: Option<&Path>,
    given: &[(&str, &Option<String>)],
) -> Result<BTreeMap<String, String>, Error> {
    let mut map = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::SettingsFile(format!("{}: {e}", path.display())))?;
            toml_map(&text)?
        }
        None => BTreeMap::new(),
    };
    for (key, value) in given {
        if let Some(value) = value {
            map.insert((*key).to_owned(), value.clone());
        }
    }
    Ok(map)
}

/// The value of setting `key`, trimmed; `None` when unset or blank.
pub fn get<'a>(map: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    map.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// A number setting within `range`, or `default` when unset; the error names the setting.
pub fn number<T>(
    map: &BTreeMap<String, String>,
    key: &str,
    default: T,
    range: RangeInclusive<T>,
) -> Result<T, Error>
where
    T: FromStr + PartialOrd + fmt::Display,
    T::Err: fmt::Display,
{
    let invalid = |reason: String| Error::Setting {
        key: key.to_owned(),
        reason,
    };
    let value = match get(map, key) {
        Some(text) => text.parse::<T>().map_err(|e| invalid(e.to_string()))?,
        None => default,
    };
    if !range.contains(&value) {
        return Err(invalid(format!(
            "must be from {} to {}",
            range.start(),
            range.end()
        )));
    }
    Ok(value)
}

/// Reads TOML settings, keys upper-cased to their environment names; arrays become
/// comma-separated lists, the form the environment gives them in.
pub fn toml_map(text: &str) -> Result<BTreeMap<String, String>, Error> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| Error::SettingsFile(e.to_string()))?;
    table
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(","),
                other => {
                    return Err(Error::SettingsFile(format!(
                        "{key}: unsupported value {other}"
                    )));
                }
            };
            Ok((key.to_ascii_uppercase(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_become_environment_style_strings() {
        let map =
            toml_map("rot_port = 8080\nproxies = [\"http://a\", \"http://b\"]\nx = true").unwrap();
        assert_eq!(map["ROT_PORT"], "8080");
        assert_eq!(map["PROXIES"], "http://a,http://b");
        assert_eq!(map["X"], "true");
        let err = toml_map("table = { a = 1 }").unwrap_err().to_string();
        assert!(err.contains("table: unsupported value"), "{err}");
        assert!(toml_map("not toml").is_err());
    }

    #[test]
    fn numbers_are_read_within_their_range_and_errors_name_the_setting() {
        let map: BTreeMap<String, String> = [("N", " 7 "), ("BLANK", " "), ("BIG", "11")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(number(&map, "N", 1u32, 1..=10).unwrap(), 7);
        assert_eq!(number(&map, "BLANK", 3u32, 1..=10).unwrap(), 3);
        assert_eq!(number(&map, "UNSET", 3u32, 1..=10).unwrap(), 3);
        let too_big = number(&map, "BIG", 1u32, 1..=10).unwrap_err().to_string();
        assert_eq!(too_big, "BIG: must be from 1 to 10");
        let not_a_number = number(&map, "N", 1u8, 0..=5).unwrap_err().to_string();
        assert!(not_a_number.starts_with("N: "), "{not_a_number}");
        assert!(number::<u32>(&map, "N", 1, 8..=9).is_err());
    }

    #[test]
    fn given_values_override_the_file() {
        let dir = std::env::temp_dir().join(format!("rot-ops-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("settings.toml");
        std::fs::write(&file, "a = \"file\"\nb = \"file\"").unwrap();
        let (set, unset) = (Some("given".to_owned()), None);
        let map = layered(Some(&file), &[("A", &set), ("B", &unset), ("C", &set)]).unwrap();
        assert_eq!(map["A"], "given");
        assert_eq!(map["B"], "file");
        assert_eq!(map["C"], "given");
        let missing = layered(Some(&dir.join("missing.toml")), &[]).unwrap_err();
        assert!(missing.to_string().contains("missing.toml"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
