//! Checklist templates. A job's checklist is made from one; the pack below covers the seeds'
//! businesses (HVAC maintenance, collision repair QC, device diagnostics with its data wipe, hotel
//! maintenance, trades installation and commissioning).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What kind of answer a checklist item takes.
#[derive(
    utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// `pass`, `fail` or `na`.
    PassFail,
    /// Free text.
    Text,
    /// A number, with an optional unit and range.
    Number,
    /// One of `choices`.
    Choice,
    /// Answered by attaching a photo; the value is the photo document's id.
    PhotoRequired,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::PassFail => "pass_fail",
            ItemKind::Text => "text",
            ItemKind::Number => "number",
            ItemKind::Choice => "choice",
            ItemKind::PhotoRequired => "photo_required",
        }
    }
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Template {
    pub name: String,
    /// The version of this template's content: 0 for the built-in pack, 1, 2, … for an org's own
    /// versions (set by the server; a checklist records the version it was made from).
    #[serde(default)]
    pub version: u32,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub items: Vec<TemplateItem>,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TemplateItem {
    /// Stable within the template, so scripts and reports can name an item.
    pub id: String,
    pub label: String,
    pub kind: ItemKind,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub choices: Vec<String>,
}

const PACK: &[&str] = &[
    include_str!("../templates/general.json"),
    include_str!("../templates/hvac_maintenance.json"),
    include_str!("../templates/collision_qc.json"),
    include_str!("../templates/device_diagnostics.json"),
    include_str!("../templates/hotel_maintenance.json"),
    include_str!("../templates/trades_installation.json"),
];

/// The built-in template pack, parsed. The files are checked by the tests below.
pub fn builtin() -> Vec<Template> {
    PACK.iter()
        .map(|s| serde_json::from_str(s).expect("built-in template parses"))
        .collect()
}

/// The built-in template called `name`.
pub fn find(name: &str) -> Option<Template> {
    builtin().into_iter().find(|t| t.name == name)
}

/// The template a job gets when none is named.
pub const DEFAULT_TEMPLATE: &str = "general";

/// Limits on a template an org writes: enough for the largest inspection in the seeds, small
/// enough that a template cannot bloat every checklist made from it.
pub const MAX_ITEMS: usize = 200;
pub const MAX_TEXT: usize = 500;

/// Every reason `t` is not a template a checklist can be made from, each naming its field
/// (`items[3].choices`, say). Empty when it is fine.
pub fn problems(t: &Template) -> Vec<String> {
    let mut out = Vec::new();
    if !is_valid_name(&t.name) {
        out.push(
            "`name`: 1 to 64 characters of lower-case letters, digits, `_` or `-`, starting with a letter"
                .to_string(),
        );
    }
    let text = |field: &str, value: &str, required: bool, out: &mut Vec<String>| {
        if required && value.trim().is_empty() {
            out.push(format!("`{field}`: must not be empty"));
        } else if value.chars().count() > MAX_TEXT {
            out.push(format!("`{field}`: longer than {MAX_TEXT} characters"));
        } else if value.chars().any(|c| c.is_control() && c != '\n') {
            out.push(format!("`{field}`: holds a control character"));
        }
    };
    text("title", &t.title, true, &mut out);
    text("description", &t.description, false, &mut out);
    if t.items.is_empty() {
        out.push("`items`: a template needs at least one item".to_string());
    }
    if t.items.len() > MAX_ITEMS {
        out.push(format!("`items`: more than {MAX_ITEMS} items"));
    }
    let mut ids = std::collections::HashSet::new();
    for (n, item) in t.items.iter().enumerate() {
        let at = |f: &str| format!("items[{n}].{f}");
        if !is_valid_name(&item.id) {
            out.push(format!(
                "`{}`: 1 to 64 characters of lower-case letters, digits, `_` or `-`, starting with a letter",
                at("id")
            ));
        } else if !ids.insert(item.id.as_str()) {
            out.push(format!("`{}`: `{}` appears twice", at("id"), item.id));
        }
        text(&at("label"), &item.label, true, &mut out);
        if let Some(unit) = &item.unit {
            text(&at("unit"), unit, false, &mut out);
        }
        match item.kind {
            ItemKind::Choice if item.choices.is_empty() => {
                out.push(format!("`{}`: a choice item needs choices", at("choices")));
            }
            ItemKind::Choice => {
                let mut seen = std::collections::HashSet::new();
                for c in &item.choices {
                    text(&at("choices"), c, true, &mut out);
                    if !seen.insert(c.as_str()) {
                        out.push(format!("`{}`: `{c}` appears twice", at("choices")));
                    }
                }
            }
            _ if !item.choices.is_empty() => {
                out.push(format!(
                    "`{}`: only a choice item has choices",
                    at("choices")
                ));
            }
            _ => {}
        }
        if item.kind != ItemKind::Number && (item.min.is_some() || item.max.is_some()) {
            out.push(format!("`{}`: only a number item has a range", at("min")));
        }
        for (f, v) in [("min", item.min), ("max", item.max)] {
            if v.is_some_and(|v| !v.is_finite()) {
                out.push(format!("`{}`: not a finite number", at(f)));
            }
        }
        if let (Some(lo), Some(hi)) = (item.min, item.max)
            && lo > hi
        {
            out.push(format!("`{}`: greater than max", at("min")));
        }
    }
    out
}

/// A template or item name: what scripts and URLs use to name it.
pub fn is_valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_template_is_well_formed() {
        let pack = builtin();
        assert_eq!(pack.len(), PACK.len());
        for t in &pack {
            assert_eq!(problems(t), Vec::<String>::new(), "{}", t.name);
            assert_eq!(t.version, 0, "{}: the pack is version 0", t.name);
        }
        assert!(find(DEFAULT_TEMPLATE).is_some());
    }

    #[test]
    fn problems_name_each_field() {
        let mut t = find(DEFAULT_TEMPLATE).unwrap();
        assert!(problems(&t).is_empty());
        t.name = "Has Spaces".into();
        t.title = " ".into();
        t.items[0].id = t.items[1].id.clone();
        t.items[1].kind = ItemKind::Choice;
        t.items[1].choices.clear();
        t.items[2].min = Some(3.0);
        let p = problems(&t).join("\n");
        for field in [
            "`name`",
            "`title`",
            "`items[1].id`",
            "`items[1].choices`",
            "`items[2].min`",
        ] {
            assert!(p.contains(field), "{field} in {p}");
        }
        t.items.clear();
        assert!(problems(&t).join(" ").contains("at least one item"));
    }

    #[test]
    fn the_pack_covers_installation_and_the_data_wipe_record() {
        let install = find("trades_installation").expect("the installation pack");
        let required: Vec<&str> = install
            .items
            .iter()
            .filter(|i| i.required)
            .map(|i| i.id.as_str())
            .collect();
        for id in [
            "before_photo",
            "after_photo",
            "equipment_serial",
            "commissioning_result",
        ] {
            assert!(required.contains(&id), "{id} is required: {required:?}");
        }
        let diagnostics = find("device_diagnostics").expect("the diagnostics pack");
        let method = diagnostics
            .items
            .iter()
            .find(|i| i.id == "wipe_method")
            .expect("a wipe method");
        assert_eq!(method.kind, ItemKind::Choice);
        assert!(method.choices.iter().any(|c| c == "NIST 800-88 Clear"));
        assert!(method.choices.iter().any(|c| c == "NIST 800-88 Purge"));
        let verified = diagnostics
            .items
            .iter()
            .find(|i| i.id == "wipe_verified")
            .expect("a verification");
        assert_eq!(verified.kind, ItemKind::PassFail);
    }
}
