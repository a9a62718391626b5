//! Reading the library for `search`, `show`, `history` and
//! `establishments`: from a [`ReadView`] of the library, or, while the node
//! runs with its web server, through the node's JSON API.
//!
//! The command code is the same for both; the API returns the library's own
//! serialised types, so output is identical either way.

use std::time::Duration;

use anyhow::Context;
use gatehouse_node::home::Home;
use gatehouse_node::projection::search::MAX_SEARCH_RESULTS;
use gatehouse_node::query::filter::Filter;
use gatehouse_node::query::{
    EstablishmentSummary, ItemView, ReadView, SearchResults, VersionEntry,
};
use gatehouse_node::web::api::ErrorBody;
use gatehouse_protocol::id::{EstablishmentId, ItemId};
use serde::de::DeserializeOwned;

use crate::daemon::WEB_ADDR_FILE;

/// How long the CLI waits for the running node's API.
pub const API_TIMEOUT: Duration = Duration::from_secs(30);

/// Where read-only commands get the library's contents.
pub trait Reader {
    /// Ranked search.
    fn search(
        &mut self,
        query: &str,
        filter: &Filter,
        limit: usize,
    ) -> anyhow::Result<SearchResults>;
    /// An item (id or unambiguous prefix), at its latest version or `version`.
    fn item(&mut self, id: &str, version: Option<u64>) -> anyhow::Result<ItemView>;
    /// An item's full id and every signed change to it.
    fn history(&mut self, id: &str) -> anyhow::Result<(ItemId, Vec<VersionEntry>)>;
    /// The admitted establishments.
    fn establishments(&mut self) -> anyhow::Result<Vec<EstablishmentSummary>>;
    /// Establishments whose name contains `text` (any case), or whose id it is.
    fn find_establishments(&mut self, text: &str) -> anyhow::Result<Vec<EstablishmentId>>;
}

impl Reader for ReadView {
    fn search(
        &mut self,
        query: &str,
        filter: &Filter,
        limit: usize,
    ) -> anyhow::Result<SearchResults> {
        Ok(ReadView::search(self, query, filter, limit)?)
    }

    fn item(&mut self, id: &str, version: Option<u64>) -> anyhow::Result<ItemView> {
        let id = self.resolve(id)?;
        Ok(self.get(&id, version)?)
    }

    fn history(&mut self, id: &str) -> anyhow::Result<(ItemId, Vec<VersionEntry>)> {
        let id = self.resolve(id)?;
        Ok((id, ReadView::history(self, &id)?))
    }

    fn establishments(&mut self) -> anyhow::Result<Vec<EstablishmentSummary>> {
        Ok(ReadView::establishments(self)?)
    }

    fn find_establishments(&mut self, text: &str) -> anyhow::Result<Vec<EstablishmentId>> {
        Ok(ReadView::find_establishments(self, text))
    }
}

/// The running node's JSON API.
pub struct Api {
    base: String,
    client: reqwest::blocking::Client,
}

impl Api {
    /// The API of the node running for `home`, if it serves one and answers
    /// as this data directory's node (its libp2p identity is this
    /// directory's node key); a stale address file, or another program on
    /// that port, is not trusted.
    pub fn connect(home: &Home) -> Option<Api> {
        let node_key = home.read_key("node").ok()??;
        let expected = gatehouse_node::net::peer_id_of(&node_key.public())?.to_string();
        let addr = std::fs::read_to_string(home.root().join(WEB_ADDR_FILE)).ok()?;
        let client = reqwest::blocking::Client::builder()
            .timeout(API_TIMEOUT)
            .no_proxy()
            .build()
            .ok()?;
        let api = Api {
            base: format!("http://{}/api/v1", addr.trim()),
            client,
        };
        let status: serde_json::Value = api
            .client
            .get(format!("{}/status", api.base))
            .timeout(Duration::from_secs(2))
            .send()
            .ok()
            .filter(|r| r.status().is_success())?
            .json()
            .ok()?;
        (status["network_state"]["peer_id"].as_str() == Some(expected.as_str())).then_some(api)
    }

    fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .get(&url)
            .query(query)
            .send()
            .with_context(|| format!("asking the running node ({url})"))?;
        if response.status().is_success() {
            return response
                .json()
                .with_context(|| format!("a malformed answer from the running node ({url})"));
        }
        let status = response.status();
        let message = response.json::<ErrorBody>().map_or_else(
            |_| format!("the running node answered {status}"),
            |e| e.error,
        );
        anyhow::bail!(message)
    }

    fn id_path(id: &str) -> anyhow::Result<String> {
        let id = id.trim().to_ascii_lowercase();
        anyhow::ensure!(
            !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()),
            "no item {id}"
        );
        Ok(format!("/items/{id}"))
    }
}

impl Reader for Api {
    fn search(
        &mut self,
        query: &str,
        filter: &Filter,
        limit: usize,
    ) -> anyhow::Result<SearchResults> {
        let mut q = filter.query_pairs();
        q.push(("q", query.to_string()));
        q.push(("limit", limit.clamp(1, MAX_SEARCH_RESULTS).to_string()));
        q.push(("facets", "false".to_string()));
        self.get("/search", &q)
    }

    fn item(&mut self, id: &str, version: Option<u64>) -> anyhow::Result<ItemView> {
        let path = Self::id_path(id)?;
        match version {
            None => self.get(&path, &[]),
            Some(v) => self.get(&format!("{path}/versions/{v}"), &[]),
        }
    }

    fn history(&mut self, id: &str) -> anyhow::Result<(ItemId, Vec<VersionEntry>)> {
        let full = self.item(id, None)?.item.id;
        let history = self.get(&format!("/items/{}/history", full.to_hex()), &[])?;
        Ok((full, history))
    }

    fn establishments(&mut self) -> anyhow::Result<Vec<EstablishmentSummary>> {
        self.get("/establishments", &[])
    }

    fn find_establishments(&mut self, text: &str) -> anyhow::Result<Vec<EstablishmentId>> {
        let needle = text.trim().to_lowercase();
        Ok(self
            .establishments()?
            .into_iter()
            .filter(|e| e.name.to_lowercase().contains(&needle) || e.id.to_hex() == needle)
            .map(|e| e.id)
            .collect())
    }
}
