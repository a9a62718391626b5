//! Full-text search over the library (tantivy, BM25).
//!
//! The index is derived data: it lives in its own directory and is rebuilt
//! from the catalog when it is missing, damaged or out of step. Title,
//! summary, body and tags are searched with English stemming and field
//! boosts; kind, status, nation, owner, pathways and settings are exact-match
//! filter fields; review dates are a numeric field for range filters.
//! Common abbreviations of the field are expanded both ways, and short
//! queries also match by prefix and with one typo, ranked below exact
//! matches.

use std::ops::Bound;
use std::path::Path;

use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::item::Item;
use gatehouse_protocol::jiff::civil::Date;
use serde::Serialize;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
    Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use thiserror::Error;

use crate::filter::Filter;

/// Memory the index writer may use before flushing a segment, in bytes.
pub const INDEX_WRITER_BUDGET_BYTES: usize = 32 * 1024 * 1024;
/// Most results one search returns.
pub const MAX_SEARCH_RESULTS: usize = 500;
/// Longest snippet, in characters.
pub const SNIPPET_MAX_CHARS: usize = 180;
/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 1_000;
/// Queries of at most this many words also match by prefix and with one
/// typo (fuzzy matches rank below exact ones).
pub const FUZZY_MAX_WORDS: usize = 3;
/// Words shorter than this are never matched fuzzily (too many neighbours).
pub const FUZZY_MIN_CHARS: usize = 4;

/// Abbreviations clinicians in secure settings use, with their long forms.
/// A query with either side also searches for the other.
pub const ABBREVIATIONS: &[(&str, &str)] = &[
    ("ipra", "in possession risk assessment"),
    ("ost", "opioid substitution therapy"),
    ("mat", "medication assisted treatment"),
    ("acct", "assessment care in custody and teamwork"),
    ("acdt", "assessment care in detention and teamwork"),
    ("irc", "immigration removal centre"),
    ("yoi", "young offender institution"),
    ("stc", "secure training centre"),
    ("pdsa", "plan do study act"),
    ("qi", "quality improvement"),
    ("tto", "to take out"),
    ("ciwa", "clinical institute withdrawal assessment"),
    ("news2", "national early warning score"),
    ("hcv", "hepatitis c"),
    ("bbv", "blood borne virus"),
    ("nrt", "nicotine replacement therapy"),
    ("dna", "did not attend"),
    ("smi", "serious mental illness"),
    ("thn", "take home naloxone"),
];

/// The query with the other form of every abbreviation it holds added.
pub fn expand_abbreviations(query: &str) -> String {
    let normal: String = query
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let words: Vec<&str> = normal.split_whitespace().collect();
    let spaced = format!(" {} ", words.join(" "));
    let mut out = query.to_string();
    for (short, long) in ABBREVIATIONS {
        if words.contains(short) {
            out.push_str(&format!(" \"{long}\""));
        } else if spaced.contains(&format!(" {long} ")) {
            out.push(' ');
            out.push_str(short);
        }
    }
    out
}

/// A search index failure.
#[derive(Debug, Error)]
pub enum SearchError {
    /// tantivy failed.
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The index directory could not be opened.
    #[error("search index directory: {0}")]
    Directory(#[from] tantivy::directory::error::OpenDirectoryError),
    /// The query is not usable.
    #[error("query: {0}")]
    BadQuery(String),
}

/// One search hit.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// The item.
    pub id: ItemId,
    /// BM25 score.
    pub score: f32,
    /// A passage of the body (or summary) around the matched terms.
    pub snippet: String,
    /// Byte ranges of `snippet` that matched.
    pub highlights: Vec<(usize, usize)>,
}

/// Hits plus the total number of matching items.
#[derive(Debug, Clone, Serialize)]
pub struct Hits {
    /// Items matching in all.
    pub total: usize,
    /// The best `limit` of them, best first.
    pub hits: Vec<Hit>,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    title: Field,
    summary: Field,
    body: Field,
    tags: Field,
    kind: Field,
    status: Field,
    nation: Field,
    owner: Field,
    pathway: Field,
    setting: Field,
    review_due: Field,
}

fn schema() -> (Schema, Fields) {
    let mut sb = Schema::builder();
    let text = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("en_stem")
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let fields = Fields {
        id: sb.add_text_field("id", STRING | STORED),
        title: sb.add_text_field("title", text.clone()),
        summary: sb.add_text_field("summary", text.clone()),
        body: sb.add_text_field("body", text.clone()),
        tags: sb.add_text_field("tags", text),
        kind: sb.add_text_field("kind", STRING),
        status: sb.add_text_field("status", STRING),
        nation: sb.add_text_field("nation", STRING),
        owner: sb.add_text_field("owner", STRING),
        pathway: sb.add_text_field("pathway", STRING),
        setting: sb.add_text_field("setting", STRING),
        review_due: sb.add_i64_field("review_due", INDEXED),
    };
    (sb.build(), fields)
}

fn day_number(d: Date) -> i64 {
    // Days since 1970-01-01; exact for every date jiff accepts.
    i64::from(
        d.since(Date::constant(1970, 1, 1))
            .map_or(0, |s| s.get_days()),
    )
}

/// The search index of one node.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Option<IndexWriter>,
    fields: Fields,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it if absent. An index with another
    /// schema (or damaged) is an error the caller answers by rebuilding.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(|e| SearchError::BadQuery(e.to_string()))?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)?;
        let index = Index::open_or_create(directory, schema)?;
        Self::from_index(index, fields)
    }

    /// An index held in memory (tests and simulation).
    pub fn in_memory() -> Result<Self, SearchError> {
        let (schema, fields) = schema();
        Self::from_index(Index::create_in_ram(schema), fields)
    }

    fn from_index(index: Index, fields: Fields) -> Result<Self, SearchError> {
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            writer: None,
            fields,
        })
    }

    fn writer(&mut self) -> Result<&mut IndexWriter, SearchError> {
        if self.writer.is_none() {
            self.writer = Some(
                self.index
                    .writer_with_num_threads(1, INDEX_WRITER_BUDGET_BYTES)?,
            );
        }
        // Set just above.
        self.writer
            .as_mut()
            .ok_or_else(|| SearchError::BadQuery("index writer unavailable".into()))
    }

    /// Number of items indexed.
    pub fn len(&self) -> usize {
        self.reader.searcher().num_docs() as usize
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds or replaces items; call [`SearchIndex::commit`] to make them visible.
    pub fn upsert(&mut self, item: &Item) -> Result<(), SearchError> {
        let f = self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, item.id.to_hex());
        doc.add_text(f.title, &item.content.title);
        doc.add_text(f.summary, &item.content.summary);
        doc.add_text(f.body, &item.content.body);
        for t in &item.content.tags {
            doc.add_text(f.tags, t);
        }
        doc.add_text(f.kind, item.content.kind.slug());
        doc.add_text(f.status, item.content.status.slug());
        doc.add_text(f.nation, item.content.nation.slug());
        doc.add_text(f.owner, item.owner.to_hex());
        for p in &item.content.pathways {
            doc.add_text(f.pathway, p.slug());
        }
        for s in &item.content.settings {
            doc.add_text(f.setting, s.slug());
        }
        doc.add_i64(f.review_due, day_number(item.content.review_due));
        let w = self.writer()?;
        w.delete_term(Term::from_field_text(f.id, &item.id.to_hex()));
        w.add_document(doc)?;
        Ok(())
    }

    /// Removes one item; call [`SearchIndex::commit`] to make it visible.
    pub fn remove(&mut self, id: &ItemId) -> Result<(), SearchError> {
        let f = self.fields;
        self.writer()?
            .delete_term(Term::from_field_text(f.id, &id.to_hex()));
        Ok(())
    }

    /// Removes everything (before a rebuild).
    pub fn clear(&mut self) -> Result<(), SearchError> {
        self.writer()?.delete_all_documents()?;
        Ok(())
    }

    /// Makes written changes durable and visible.
    pub fn commit(&mut self) -> Result<(), SearchError> {
        if let Some(w) = self.writer.as_mut() {
            w.commit()?;
            self.reader.reload()?;
        }
        Ok(())
    }

    fn term(&self, field: Field, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    }

    /// Ranked search with filters.
    pub fn search(&self, query: &str, filter: &Filter, limit: usize) -> Result<Hits, SearchError> {
        if query.len() > MAX_QUERY_BYTES {
            return Err(SearchError::BadQuery(format!(
                "query is {} bytes, over the limit of {MAX_QUERY_BYTES}",
                query.len()
            )));
        }
        let f = self.fields;
        let parser = |fuzzy: bool| {
            let mut p =
                QueryParser::for_index(&self.index, vec![f.title, f.summary, f.body, f.tags]);
            p.set_field_boost(f.title, 3.0);
            p.set_field_boost(f.tags, 2.0);
            p.set_field_boost(f.summary, 1.5);
            if fuzzy {
                for field in [f.title, f.summary, f.body, f.tags] {
                    p.set_field_fuzzy(field, true, 1, true);
                }
            }
            p
        };
        let expanded = expand_abbreviations(query);
        let (text_query, _errors) = parser(false).parse_query_lenient(&expanded);
        let words: Vec<&str> = query.split_whitespace().collect();
        let long: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| {
                w.chars().count() >= FUZZY_MIN_CHARS && w.chars().all(char::is_alphanumeric)
            })
            .collect();
        let matching: Box<dyn Query> = if words.len() <= FUZZY_MAX_WORDS && !long.is_empty() {
            let (fuzzy, _) = parser(true).parse_query_lenient(&long.join(" "));
            Box::new(BooleanQuery::new(vec![
                (Occur::Should, text_query.box_clone()),
                (
                    Occur::Should,
                    Box::new(tantivy::query::BoostQuery::new(fuzzy, 0.3)),
                ),
            ]))
        } else {
            text_query.box_clone()
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, matching)];
        let any_of = |field: Field, values: Vec<String>| -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                values
                    .iter()
                    .map(|v| (Occur::Should, self.term(field, v)))
                    .collect(),
            ))
        };
        if let Some(k) = filter.kind {
            clauses.push((Occur::Must, self.term(f.kind, k.slug())));
        }
        if let Some(s) = filter.status {
            clauses.push((Occur::Must, self.term(f.status, s.slug())));
        }
        if let Some(n) = filter.nation {
            clauses.push((Occur::Must, self.term(f.nation, n.slug())));
        }
        if let Some(p) = filter.pathway {
            clauses.push((Occur::Must, self.term(f.pathway, p.slug())));
        }
        if let Some(s) = filter.setting {
            clauses.push((Occur::Must, self.term(f.setting, s.slug())));
        }
        if let Some(owners) = &filter.owners {
            clauses.push((
                Occur::Must,
                any_of(f.owner, owners.iter().map(|o| o.to_hex()).collect()),
            ));
        }
        if let Some(before) = filter.review_due_before {
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Unbounded,
                    Bound::Excluded(Term::from_field_i64(f.review_due, day_number(before))),
                )),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let limit = limit.clamp(1, MAX_SEARCH_RESULTS);
        let (top, total) = searcher.search(
            &query,
            &(TopDocs::with_limit(limit).order_by_score(), Count),
        )?;
        let mut body_snippets = SnippetGenerator::create(&searcher, &*text_query, f.body)?;
        body_snippets.set_max_num_chars(SNIPPET_MAX_CHARS);
        let mut summary_snippets = SnippetGenerator::create(&searcher, &*text_query, f.summary)?;
        summary_snippets.set_max_num_chars(SNIPPET_MAX_CHARS);
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let Some(id) = doc
                .get_first(f.id)
                .and_then(|v| v.as_str())
                .and_then(|s| s.parse::<ItemId>().ok())
            else {
                continue;
            };
            let mut snippet = body_snippets.snippet_from_doc(&doc);
            if snippet.highlighted().is_empty() {
                let from_summary = summary_snippets.snippet_from_doc(&doc);
                if !from_summary.highlighted().is_empty() || snippet.fragment().is_empty() {
                    snippet = from_summary;
                }
            }
            hits.push(Hit {
                id,
                score,
                snippet: snippet.fragment().to_string(),
                highlights: snippet
                    .highlighted()
                    .iter()
                    .map(|r| (r.start, r.end))
                    .collect(),
            });
        }
        Ok(Hits { total, hits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviations_expand_both_ways() {
        assert!(expand_abbreviations("IPRA audit").contains("\"in possession risk assessment\""));
        assert!(expand_abbreviations("In-possession risk assessment").ends_with(" ipra"));
        assert_eq!(expand_abbreviations("naloxone"), "naloxone");
        // Only whole words: "most" holds "ost" but is not OST.
        assert_eq!(expand_abbreviations("most"), "most");
    }
}
