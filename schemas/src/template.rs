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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_template_is_well_formed() {
        let pack = builtin();
        assert_eq!(pack.len(), PACK.len());
        for t in &pack {
            let mut ids = std::collections::HashSet::new();
            assert!(!t.items.is_empty(), "{} has no items", t.name);
            for item in &t.items {
                assert!(
                    ids.insert(item.id.clone()),
                    "{}: duplicate item {}",
                    t.name,
                    item.id
                );
                if item.kind == ItemKind::Choice {
                    assert!(
                        !item.choices.is_empty(),
                        "{}: choice item {} has no choices",
                        t.name,
                        item.id
                    );
                }
                if let (Some(lo), Some(hi)) = (item.min, item.max) {
                    assert!(lo <= hi, "{}: {} has min > max", t.name, item.id);
                }
            }
        }
        assert!(find(DEFAULT_TEMPLATE).is_some());
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
