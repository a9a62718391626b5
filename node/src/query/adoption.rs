//! Adoption as readers see it: which sites adopted an item and which
//! version of it each holds (from the search index's `adopted_from` field),
//! and this site's adopted items whose source has changed since the version
//! taken (from the catalog).

use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::vocab::Status;
use serde::{Deserialize, Serialize};

use super::filter::Filter;
use super::{EstablishmentRef, ItemView, ReadView};
use crate::error::Result;
use crate::projection::search::{MAX_SEARCH_RESULTS, SearchRequest, Sort};

/// An establishment's copy of an adopted item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adopter {
    /// The copy.
    pub item: ItemId,
    /// The establishment that adopted it.
    pub establishment: EstablishmentRef,
    /// The source's version the copy holds (`None`: not recorded).
    pub version: Option<u64>,
    /// The copy's status.
    pub status: Status,
}

/// One of this site's adopted items whose source changed since the version
/// taken: revised, superseded or withdrawn.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceAlert {
    /// This site's copy.
    pub mine: ItemView,
    /// The source as it stands.
    pub source: ItemView,
    /// The source's version the copy holds.
    pub taken: u64,
}

impl ReadView {
    /// Every item meeting `filter`, from the index, most recently updated
    /// first.
    fn all_matching(&self, filter: &Filter) -> Result<Vec<ItemView>> {
        let mut out = Vec::new();
        loop {
            let page = self.find(&SearchRequest {
                sort: Sort::Updated,
                offset: out.len(),
                ..SearchRequest::relevance("", filter, MAX_SEARCH_RESULTS)
            })?;
            let n = page.results.results.len();
            out.extend(page.results.results.into_iter().map(|r| r.view));
            if n == 0 || out.len() >= page.results.total {
                return Ok(out);
            }
        }
    }

    /// Every site's copy of `source`, by establishment name.
    pub fn adopters(&self, source: &ItemId) -> Result<Vec<Adopter>> {
        let filter = Filter {
            adopted_from: Some(*source),
            ..Filter::default()
        };
        let mut out: Vec<Adopter> = self
            .all_matching(&filter)?
            .into_iter()
            .map(|v| Adopter {
                item: v.item.id,
                version: v.item.adoption.map(|a| a.version),
                status: v.item.content.status,
                establishment: v.establishment,
            })
            .collect();
        out.sort_by(|a, b| a.establishment.name.cmp(&b.establishment.name));
        Ok(out)
    }

    /// This site's adopted items, in force, whose source has a later
    /// version than the one taken, or was superseded or withdrawn.
    pub fn source_changes(&self) -> Result<Vec<SourceAlert>> {
        let mine = Filter {
            owners: Some(vec![self.establishment]),
            ..Filter::default()
        };
        let mut out = Vec::new();
        for view in self.all_matching(&mine)? {
            if !matches!(view.item.content.status, Status::Draft | Status::Published) {
                continue;
            }
            let Some(adoption) = view.item.adoption else {
                continue;
            };
            let Some((source, source_ms)) =
                crate::projection::catalog_item(&*self.store, &adoption.from)?
            else {
                continue;
            };
            let moved = source.version > adoption.version
                || matches!(
                    source.content.status,
                    Status::Superseded | Status::Withdrawn
                );
            if moved {
                out.push(SourceAlert {
                    mine: view,
                    source: self.view(source, source_ms),
                    taken: adoption.version,
                });
            }
        }
        out.sort_by(|a, b| a.mine.item.content.title.cmp(&b.mine.item.content.title));
        Ok(out)
    }
}
