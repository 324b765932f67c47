//! `ECR_DEPLOYD_<SECTION>_<KEY>` overrides applied to the parsed TOML table (SPEC §3).

use std::collections::BTreeMap;

use super::{ConfigError, ENV_NOT_KEYS, ENV_PREFIX, Settings, invalid};

/// Applies `ECR_DEPLOYD_<SECTION>_<KEY>` variables. The known keys and their types are those
/// of [`Settings::default`], so a new key is overridable without a second list to maintain.
pub(super) fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let defaults = toml::Table::try_from(Settings::default())
        .map_err(|e| invalid("<defaults>", e.to_string()))?;
    let mut known: BTreeMap<String, (String, String, toml::Value)> = BTreeMap::new();
    for (section, keys) in &defaults {
        // Tables inside a section ([policy.windows.NAME]) are set in the file only.
        let scalars = keys
            .as_table()
            .into_iter()
            .flatten()
            .filter(|(_, v)| !v.is_table());
        for (key, value) in scalars {
            let var = format!(
                "{ENV_PREFIX}{}_{}",
                section.to_uppercase(),
                key.to_uppercase()
            );
            known.insert(var, (section.clone(), key.clone(), value.clone()));
        }
    }
    for (var, raw) in env {
        if !var.starts_with(ENV_PREFIX) || ENV_NOT_KEYS.contains(&var.as_str()) {
            continue;
        }
        let Some((section, key, default)) = known.get(&var) else {
            return Err(ConfigError::Env {
                var,
                reason: "is not a known setting (see SPEC §3 for the keys)".into(),
            });
        };
        let value = env_value(default, &raw).map_err(|reason| ConfigError::Env {
            var: var.clone(),
            reason,
        })?;
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let Some(section_table) = entry.as_table_mut() else {
            return Err(invalid(section, "must be a table"));
        };
        section_table.insert(key.clone(), value);
    }
    Ok(())
}

pub(super) fn env_value(default: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    use toml::Value as V;
    Ok(match default {
        V::Integer(_) => V::Integer(
            raw.trim()
                .parse()
                .map_err(|_| format!("{raw:?} is not an integer"))?,
        ),
        V::Boolean(_) => V::Boolean(match raw.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(format!("{raw:?} is not true or false")),
        }),
        V::Array(_) => {
            let items: Vec<String> = if raw.trim_start().starts_with('[') {
                serde_json::from_str(raw)
                    .map_err(|e| format!("not a JSON array of strings: {e}"))?
            } else {
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            V::Array(items.into_iter().map(V::String).collect())
        }
        _ => V::String(raw.to_owned()),
    })
}
