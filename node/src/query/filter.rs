//! The filters `list`, `search` and `due` share.

use gatehouse_protocol::id::{EstablishmentId, ItemId};
use gatehouse_protocol::item::Item;
use gatehouse_protocol::jiff::civil::Date;
use gatehouse_protocol::vocab::{Kind, Nation, Pathway, Setting, Status};

/// Conditions an item must meet; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Kind of document.
    pub kind: Option<Kind>,
    /// Has this care pathway.
    pub pathway: Option<Pathway>,
    /// Applies to this setting type.
    pub setting: Option<Setting>,
    /// Has this status.
    pub status: Option<Status>,
    /// Follows this nation's guidance.
    pub nation: Option<Nation>,
    /// Owned by one of these establishments.
    pub owners: Option<Vec<EstablishmentId>>,
    /// Review due strictly before this date.
    pub review_due_before: Option<Date>,
    /// Adopted from this item.
    pub adopted_from: Option<ItemId>,
}

impl Filter {
    /// The query-string parameters of the web search and API that ask for
    /// this filter (what `web::parse_search` reads back).
    pub fn query_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = [
            ("kind", self.kind.map(Kind::slug)),
            ("pathway", self.pathway.map(Pathway::slug)),
            ("setting", self.setting.map(Setting::slug)),
            ("nation", self.nation.map(Nation::slug)),
            ("status", self.status.map(Status::slug)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v.to_string())))
        .collect();
        for o in self.owners.iter().flatten() {
            out.push(("owner", o.to_hex()));
        }
        if let Some(d) = self.review_due_before {
            out.push(("review_due_before", d.to_string()));
        }
        out
    }

    /// Whether `item` meets every condition.
    pub fn matches(&self, item: &Item) -> bool {
        let c = &item.content;
        self.kind.is_none_or(|k| c.kind == k)
            && self.pathway.is_none_or(|p| c.pathways.contains(&p))
            && self.setting.is_none_or(|s| c.settings.contains(&s))
            && self.status.is_none_or(|s| c.status == s)
            && self.nation.is_none_or(|n| c.nations.contains(&n))
            && self.owners.as_ref().is_none_or(|o| o.contains(&item.owner))
            && self.review_due_before.is_none_or(|d| c.review_due < d)
            && self
                .adopted_from
                .is_none_or(|s| item.adopted_from == Some(s))
    }
}
