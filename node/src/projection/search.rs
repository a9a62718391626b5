//! Full-text search over the library (tantivy, BM25).
//!
//! The index is derived data: it lives in its own directory and is rebuilt
//! from the catalog when it is missing, damaged or out of step. Title,
//! summary, body and tags are searched with English stemming and field
//! boosts; kind, status, nation, owner, pathways and settings are exact-match
//! filter fields; review dates are a numeric field for range filters.
//! Common abbreviations of the field are expanded both ways, and short
//! queries also match by prefix and with one typo, ranked below exact
//! matches. Searches return facet counts (kind, pathway, setting, nation,
//! owner, status) for everything that matched, and can be ordered by
//! relevance, last update or review date, one page at a time.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};

use gatehouse_protocol::id::ItemId;
use gatehouse_protocol::item::Item;
use gatehouse_protocol::jiff::civil::Date;
use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument,
    Term,
};
use thiserror::Error;

use super::facets;
use crate::query::filter::Filter;

/// Memory the index writer may use before flushing a segment, in bytes.
pub const INDEX_WRITER_BUDGET_BYTES: usize = 32 * 1024 * 1024;
/// Most results one search returns.
pub const MAX_SEARCH_RESULTS: usize = 500;
/// Deepest result reachable by paging (offset plus page size): ranking
/// costs grow with it, and nobody reads result 10,001.
pub const MAX_SEARCH_WINDOW: usize = 10_000;
/// The facets every search counts, in the order pages show them.
pub const FACETS: [&str; 6] = ["kind", "pathway", "setting", "nation", "owner", "status"];
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

/// The query without "field exists" terms (`*`, `body:*`): the parser reads
/// them as queries over fast fields, which the text fields are not, and a
/// person typing one means "anything".
fn without_exists_terms(query: &str) -> String {
    query
        .split_whitespace()
        .filter(|w| !(w.trim_start_matches(['+', '-']) == "*" || w.ends_with(":*")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A search that fails on the schema failed on what the query asked (a
/// "field exists" term inside brackets, say): the query is at fault, not
/// the index.
fn query_fault(e: tantivy::TantivyError) -> SearchError {
    match e {
        tantivy::TantivyError::SchemaError(reason) => SearchError::BadQuery(format!(
            "{reason}; a field can be searched for words (`title:naloxone`), not for having any value"
        )),
        other => SearchError::Index(other),
    }
}

/// The first [`SNIPPET_MAX_CHARS`] characters of a stored text field.
fn opening(doc: &TantivyDocument, field: Field) -> String {
    doc.get_first(field)
        .and_then(|v| v.as_str())
        .map(|s| s.chars().take(SNIPPET_MAX_CHARS).collect())
        .unwrap_or_default()
}

/// Words so common in questions that matching them finds nothing
/// ("how do we manage ...", "naloxone on release"): they are left out of a
/// query, so they are neither matched nor marked in snippets.
const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "an", "and", "any", "are", "as", "at", "be", "but", "by", "can", "could",
    "did", "do", "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is",
    "it", "its", "me", "my", "of", "on", "or", "our", "should", "so", "that", "the", "their",
    "them", "then", "there", "these", "they", "this", "those", "to", "us", "was", "we", "were",
    "what", "when", "where", "which", "who", "why", "will", "with", "would", "you", "your",
];

/// `query` without its stop words; as it is when it uses query syntax
/// (quotes, fields, operators) or holds nothing but stop words.
pub fn without_stop_words(query: &str) -> String {
    if query.contains(['"', ':', '(', ')', '*', '^', '~'])
        || query.split_whitespace().any(|w| w.starts_with(['+', '-']))
    {
        return query.to_string();
    }
    let stop = |w: &str| {
        let bare = w
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        STOP_WORDS.contains(&bare.as_str())
    };
    // A hyphenated word is words to the index ("in-possession"): its stop
    // words go too.
    let kept: Vec<String> = query
        .split_whitespace()
        .filter_map(|w| {
            let parts: Vec<&str> = w.split('-').filter(|p| !stop(p)).collect();
            (!parts.is_empty()).then(|| parts.join("-"))
        })
        .collect();
    if kept.is_empty() {
        query.to_string()
    } else {
        kept.join(" ")
    }
}

/// How far apart, per word, the words of an abbreviation's long form may
/// be and still match it, in any order ("risk assessment for in-possession
/// medication" for IPRA's "in possession risk assessment").
pub const LONG_FORM_SLOP_PER_WORD: usize = 4;

/// An abbreviation's long form as a query: its words without stop words
/// (which are then neither matched nor marked), near each other in any
/// order.
fn long_form_query(long: &str) -> String {
    let words: Vec<&str> = long
        .split_whitespace()
        .filter(|w| !STOP_WORDS.contains(w))
        .collect();
    match words.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        many => format!(
            "\"{}\"~{}",
            many.join(" "),
            many.len() * LONG_FORM_SLOP_PER_WORD
        ),
    }
}

/// Whether `word` is one of [`ABBREVIATIONS`]' short forms.
fn is_abbreviation(word: &str) -> bool {
    let w = word.to_lowercase();
    ABBREVIATIONS.iter().any(|(short, _)| *short == w)
}

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
            out.push(' ');
            out.push_str(&long_form_query(long));
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
    /// Index files fail their checksums.
    #[error("search index files are damaged: {0}")]
    Damaged(String),
    /// The index was written in another format than this node writes.
    #[error("search index is in format {found:?}, not {INDEX_FORMAT:?}")]
    Format {
        /// The format recorded beside the index (empty if none).
        found: String,
    },
    /// The index directory could not be created or removed.
    #[error("search index directory {path}: {source}")]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// How search results are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Best match first (an empty query lists most recently updated first).
    #[default]
    Relevance,
    /// Most recently updated first.
    Updated,
    /// Review due soonest first.
    ReviewDue,
}

impl Sort {
    /// Every order, as offered to people.
    pub const ALL: [Sort; 3] = [Sort::Relevance, Sort::Updated, Sort::ReviewDue];

    /// The name used in URLs and JSON.
    pub fn slug(self) -> &'static str {
        match self {
            Sort::Relevance => "relevance",
            Sort::Updated => "updated",
            Sort::ReviewDue => "review_due",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Sort::Relevance => "Best match",
            Sort::Updated => "Recently updated",
            Sort::ReviewDue => "Review date",
        }
    }

    /// The order results really come in for `query`: an empty query has no
    /// relevance, so it lists most recently updated first.
    pub fn effective(self, query: &str) -> Sort {
        if self == Sort::Relevance && query.trim().is_empty() {
            Sort::Updated
        } else {
            self
        }
    }

    /// The order named `slug`.
    pub fn from_slug(slug: &str) -> Option<Sort> {
        Sort::ALL.into_iter().find(|s| s.slug() == slug)
    }
}

/// One search: the words, the filters, the order and the page wanted.
#[derive(Debug, Clone, Copy)]
pub struct SearchRequest<'a> {
    /// What to look for; empty lists everything that passes the filter.
    pub query: &'a str,
    /// Conditions on the items.
    pub filter: &'a Filter,
    /// The order of results.
    pub sort: Sort,
    /// Results to skip (paging).
    pub offset: usize,
    /// Results wanted, at most [`MAX_SEARCH_RESULTS`].
    pub limit: usize,
    /// Whether to count facets over every match (a few milliseconds at
    /// 100,000 items for a broad query; the CLI does not show them).
    pub facets: bool,
}

impl<'a> SearchRequest<'a> {
    /// The best `limit` items for `query` meeting `filter`, without facets.
    pub fn relevance(query: &'a str, filter: &'a Filter, limit: usize) -> Self {
        Self {
            query,
            filter,
            sort: Sort::Relevance,
            offset: 0,
            limit,
            facets: false,
        }
    }
}

/// How many matching items have one value of a facet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetCount {
    /// The value (a vocabulary slug, or an establishment id for `owner`).
    pub value: String,
    /// Matching items with it.
    pub count: u64,
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
    /// The requested page of them, in the requested order.
    pub hits: Vec<Hit>,
    /// For each of [`FACETS`], the values held by matching items and how
    /// many have each, most first (empty unless the request asked).
    pub facets: BTreeMap<String, Vec<FacetCount>>,
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
    adopted_from: Field,
    review_due: Field,
    updated: Field,
    facet_bits: Field,
}

/// The index's settings: stored text is compressed in blocks of 64 KiB,
/// which lz4 packs tighter than its default 16 KiB; a page of results
/// reads a handful of blocks.
fn settings() -> tantivy::IndexSettings {
    tantivy::IndexSettings {
        docstore_blocksize: 64 * 1024,
        ..tantivy::IndexSettings::default()
    }
}

fn schema() -> (Schema, Fields) {
    let mut sb = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("en_stem")
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    // Snippets are cut from the summary and the body, so only they are
    // stored beside the id; results take their titles from the catalog.
    let snippet_text = text.clone().set_stored();
    let fields = Fields {
        id: sb.add_text_field("id", STRING | STORED),
        title: sb.add_text_field("title", text.clone()),
        summary: sb.add_text_field("summary", snippet_text.clone()),
        body: sb.add_text_field("body", snippet_text),
        tags: sb.add_text_field("tags", text),
        kind: sb.add_text_field("kind", STRING),
        status: sb.add_text_field("status", STRING),
        nation: sb.add_text_field("nation", STRING),
        owner: sb.add_text_field(facets::OWNER, STRING | FAST),
        pathway: sb.add_text_field("pathway", STRING),
        setting: sb.add_text_field("setting", STRING),
        adopted_from: sb.add_text_field("adopted_from", STRING),
        review_due: sb.add_i64_field("review_due", INDEXED | FAST),
        updated: sb.add_i64_field("updated", FAST),
        facet_bits: sb.add_u64_field(facets::BITS, FAST),
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

/// The search index of one node: written by the projections, read through
/// [`SearchReader`]s.
pub struct SearchIndex {
    read: SearchReader,
    reader: IndexReader,
    writer: Option<IndexWriter>,
}

/// Searches the index as it was at one commit (a tantivy `Searcher` holds
/// the segments of that moment). Cheap to clone and usable from any thread
/// while the index is written: queries never wait for a write.
#[derive(Clone)]
pub struct SearchReader {
    index: Index,
    searcher: Searcher,
    fields: Fields,
    /// Answers given from these segments, by request: a page asked for
    /// again (the next person searching the same words, the facets of a
    /// search refined and undone) costs a lookup. A new commit brings a new
    /// reader with an empty cache, so an answer never outlives its index.
    answers: Arc<Mutex<HashMap<String, Hits>>>,
}

/// The format of the index files this node writes, recorded beside them in
/// [`FORMAT_FILE`]. An index without it, or with another, is rebuilt: "2"
/// stores its columnar dictionaries without zstd, which format 1 (no file)
/// may have used and this build cannot read.
pub const INDEX_FORMAT: &str = "2";

/// The file in the index directory that records [`INDEX_FORMAT`].
pub const FORMAT_FILE: &str = "gatehouse-format";

/// Most answers a reader keeps; past it, the cache starts again empty.
pub const MAX_CACHED_ANSWERS: usize = 512;

impl SearchIndex {
    /// Opens the index in `dir`, creating it if absent. An index with another
    /// schema (or damaged) is an error the caller answers by rebuilding.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(|source| SearchError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let marker = dir.join(FORMAT_FILE);
        let io = |source| SearchError::Io {
            path: marker.clone(),
            source,
        };
        if dir.join("meta.json").exists() {
            let found = match std::fs::read_to_string(&marker) {
                Ok(found) => found,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(io(e)),
            };
            if found.trim() != INDEX_FORMAT {
                return Err(SearchError::Format {
                    found: found.trim().to_string(),
                });
            }
        } else {
            std::fs::write(&marker, INDEX_FORMAT).map_err(io)?;
        }
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)?;
        let index = Index::builder()
            .schema(schema)
            .settings(settings())
            .open_or_create(directory)?;
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
            read: SearchReader {
                index,
                searcher: reader.searcher(),
                fields,
                answers: Arc::default(),
            },
            reader,
            writer: None,
        })
    }

    /// A reader of this index as of its last commit.
    pub fn reader(&self) -> SearchReader {
        self.read.clone()
    }

    fn writer(&mut self) -> Result<&mut IndexWriter, SearchError> {
        if self.writer.is_none() {
            self.writer = Some(
                self.read
                    .index
                    .writer_with_num_threads(1, INDEX_WRITER_BUDGET_BYTES)?,
            );
        }
        // Set just above.
        self.writer
            .as_mut()
            .ok_or_else(|| SearchError::BadQuery("index writer unavailable".into()))
    }

    /// Checks every file of the index against its checksum, so damage is
    /// found when the index is opened rather than by a later search.
    pub fn verify(&self) -> Result<(), SearchError> {
        let damaged = self.read.index.validate_checksum()?;
        if damaged.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = damaged.iter().map(|p| p.display().to_string()).collect();
        names.sort();
        Err(SearchError::Damaged(names.join(", ")))
    }

    /// Number of items indexed.
    pub fn len(&self) -> usize {
        self.read.searcher.num_docs() as usize
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds or replaces an item, last updated at `updated_ms`; call
    /// [`SearchIndex::commit`] to make it visible.
    pub fn upsert(
        &mut self,
        item: &Item,
        updated_ms: u64,
        attachments_text: &str,
    ) -> Result<(), SearchError> {
        let f = self.read.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, item.id.to_hex());
        doc.add_text(f.title, &item.content.title);
        doc.add_text(f.summary, &item.content.summary);
        doc.add_text(
            f.body,
            crate::projection::markdown::plain_text(&item.content.body),
        );
        if !attachments_text.is_empty() {
            // The text of the files is found as the body is.
            doc.add_text(f.body, attachments_text);
        }
        for t in &item.content.tags {
            doc.add_text(f.tags, t);
        }
        doc.add_text(f.kind, item.content.kind.slug());
        doc.add_text(f.status, item.content.status.slug());
        for n in &item.content.nations {
            doc.add_text(f.nation, n.slug());
        }
        doc.add_text(f.owner, item.owner.to_hex());
        for p in &item.content.pathways {
            doc.add_text(f.pathway, p.slug());
        }
        for s in &item.content.settings {
            doc.add_text(f.setting, s.slug());
        }
        if let Some(source) = item.adopted_from {
            doc.add_text(f.adopted_from, source.to_hex());
        }
        doc.add_i64(f.review_due, day_number(item.content.review_due));
        doc.add_i64(f.updated, i64::try_from(updated_ms).unwrap_or(i64::MAX));
        doc.add_u64(f.facet_bits, facets::bits(item));
        let w = self.writer()?;
        w.delete_term(Term::from_field_text(f.id, &item.id.to_hex()));
        w.add_document(doc)?;
        Ok(())
    }

    /// Removes one item; call [`SearchIndex::commit`] to make it visible.
    pub fn remove(&mut self, id: &ItemId) -> Result<(), SearchError> {
        let f = self.read.fields;
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
            self.read.searcher = self.reader.searcher();
            self.read.answers = Arc::default();
        }
        Ok(())
    }

    /// Ranked search with filters: the best `limit` items.
    pub fn search(&self, query: &str, filter: &Filter, limit: usize) -> Result<Hits, SearchError> {
        self.read.search(query, filter, limit)
    }

    /// One page of results for `req`, with facet counts over every match.
    pub fn find(&self, req: &SearchRequest<'_>) -> Result<Hits, SearchError> {
        self.read.find(req)
    }
}

impl SearchReader {
    fn term(&self, field: Field, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    }

    /// Ranked search with filters: the best `limit` items.
    pub fn search(&self, query: &str, filter: &Filter, limit: usize) -> Result<Hits, SearchError> {
        self.find(&SearchRequest::relevance(query, filter, limit))
    }

    /// One page of results for `req`, with facet counts over every match;
    /// the same request again is answered from the reader's cache.
    pub fn find(&self, req: &SearchRequest<'_>) -> Result<Hits, SearchError> {
        let key = format!(
            "{:?}\u{0}{:?}\u{0}{:?}\u{0}{}\u{0}{}\u{0}{}",
            req.query, req.filter, req.sort, req.offset, req.limit, req.facets
        );
        let cached = self
            .answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(hits) = cached {
            return Ok(hits);
        }
        let hits = self.find_uncached(req)?;
        let mut answers = self
            .answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if answers.len() >= MAX_CACHED_ANSWERS {
            answers.clear();
        }
        answers.insert(key, hits.clone());
        Ok(hits)
    }

    fn find_uncached(&self, req: &SearchRequest<'_>) -> Result<Hits, SearchError> {
        if req.query.len() > MAX_QUERY_BYTES {
            return Err(SearchError::BadQuery(format!(
                "query is {} bytes, over the limit of {MAX_QUERY_BYTES}",
                req.query.len()
            )));
        }
        let cleaned = without_stop_words(&without_exists_terms(req.query));
        let query = cleaned.trim();
        if req.offset >= MAX_SEARCH_WINDOW {
            return Err(SearchError::BadQuery(format!(
                "results beyond the first {MAX_SEARCH_WINDOW} cannot be paged to; narrow the search"
            )));
        }
        // A page that would reach past the window ends at its edge.
        let limit = req
            .limit
            .clamp(1, MAX_SEARCH_RESULTS)
            .min(MAX_SEARCH_WINDOW - req.offset);
        let f = self.fields;
        let text_query = (!query.is_empty()).then(|| self.text_query(query));
        let matching: Box<dyn Query> = match &text_query {
            Some(q) => self.with_fuzzy(query, q.box_clone()),
            None => Box::new(AllQuery),
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, matching)];
        clauses.extend(
            self.filter_clauses(req.filter)
                .into_iter()
                .map(|q| (Occur::Must, q)),
        );
        let query_all = BooleanQuery::new(clauses);
        let searcher = &self.searcher;
        let window = TopDocs::with_limit(limit).and_offset(req.offset);
        let facets = req.facets.then_some(facets::FacetCounter);
        let sort = req.sort.effective(query);
        let unscored = |top: Vec<(Option<i64>, DocAddress)>| -> Vec<(f32, DocAddress)> {
            top.into_iter().map(|(_, a)| (0.0, a)).collect()
        };
        let (top, total, facet_counts): (Vec<(f32, DocAddress)>, usize, Option<facets::Tally>) =
            match sort {
                Sort::Relevance => searcher
                    .search(&query_all, &(window.order_by_score(), Count, facets))
                    .map_err(query_fault)?,
                Sort::Updated => {
                    let by = window.order_by_fast_field::<i64>("updated", Order::Desc);
                    let (top, n, fc) = searcher
                        .search(&query_all, &(by, Count, facets))
                        .map_err(query_fault)?;
                    (unscored(top), n, fc)
                }
                Sort::ReviewDue => {
                    let by = window.order_by_fast_field::<i64>("review_due", Order::Asc);
                    let (top, n, fc) = searcher
                        .search(&query_all, &(by, Count, facets))
                        .map_err(query_fault)?;
                    (unscored(top), n, fc)
                }
            };
        let facet_out = facet_counts
            .map(facets::Tally::into_counts)
            .unwrap_or_default();
        let snippets = match &text_query {
            Some(q) => {
                let mut body = SnippetGenerator::create(searcher, &**q, f.body)?;
                body.set_max_num_chars(SNIPPET_MAX_CHARS);
                let mut summary = SnippetGenerator::create(searcher, &**q, f.summary)?;
                summary.set_max_num_chars(SNIPPET_MAX_CHARS);
                Some((body, summary))
            }
            None => None,
        };
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
            let (snippet, highlights) = match &snippets {
                Some((body, summary)) => {
                    let mut snippet = body.snippet_from_doc(&doc);
                    if snippet.highlighted().is_empty() {
                        let from_summary = summary.snippet_from_doc(&doc);
                        if !from_summary.highlighted().is_empty() || snippet.fragment().is_empty() {
                            snippet = from_summary;
                        }
                    }
                    if snippet.fragment().trim().is_empty() {
                        // A prefix or one-typo match ("nalox") has no exact
                        // word to centre a snippet on: the summary opens.
                        (opening(&doc, f.summary), Vec::new())
                    } else {
                        let ranges = snippet
                            .highlighted()
                            .iter()
                            .map(|r| (r.start, r.end))
                            .collect();
                        (snippet.fragment().to_string(), ranges)
                    }
                }
                None => (opening(&doc, f.summary), Vec::new()),
            };
            hits.push(Hit {
                id,
                score,
                snippet,
                highlights,
            });
        }
        Ok(Hits {
            total,
            hits,
            facets: facet_out,
        })
    }

    fn parser(&self, fuzzy: bool) -> QueryParser {
        let f = self.fields;
        let mut p = QueryParser::for_index(&self.index, vec![f.title, f.summary, f.body, f.tags]);
        p.set_field_boost(f.title, 3.0);
        p.set_field_boost(f.tags, 2.0);
        p.set_field_boost(f.summary, 1.5);
        if fuzzy {
            for field in [f.title, f.summary, f.body, f.tags] {
                p.set_field_fuzzy(field, true, 1, true);
            }
        }
        p
    }

    /// The words of `query`, with abbreviations expanded (used for snippets).
    fn text_query(&self, query: &str) -> Box<dyn Query> {
        self.parser(false)
            .parse_query_lenient(&expand_abbreviations(query))
            .0
    }

    /// `exact`, plus prefix and one-typo matches of the longer words of a
    /// short query, ranked below exact matches.
    fn with_fuzzy(&self, query: &str, exact: Box<dyn Query>) -> Box<dyn Query> {
        let words: Vec<&str> = query.split_whitespace().collect();
        let long: Vec<&str> = words
            .iter()
            .copied()
            .filter(|w| {
                // An abbreviation one letter from a word is another word
                // ("ipra", "opra"): it is matched as itself and its long form.
                w.chars().count() >= FUZZY_MIN_CHARS
                    && w.chars().all(char::is_alphanumeric)
                    && !is_abbreviation(w)
            })
            .collect();
        if words.len() > FUZZY_MAX_WORDS || long.is_empty() {
            return exact;
        }
        let (fuzzy, _) = self.parser(true).parse_query_lenient(&long.join(" "));
        Box::new(BooleanQuery::new(vec![
            (Occur::Should, exact),
            (
                Occur::Should,
                Box::new(tantivy::query::BoostQuery::new(fuzzy, 0.3)),
            ),
        ]))
    }

    fn filter_clauses(&self, filter: &Filter) -> Vec<Box<dyn Query>> {
        let f = self.fields;
        let mut out: Vec<Box<dyn Query>> = Vec::new();
        if let Some(k) = filter.kind {
            out.push(self.term(f.kind, k.slug()));
        }
        if let Some(s) = filter.status {
            out.push(self.term(f.status, s.slug()));
        }
        if let Some(n) = filter.nation {
            out.push(self.term(f.nation, n.slug()));
        }
        if let Some(p) = filter.pathway {
            out.push(self.term(f.pathway, p.slug()));
        }
        if let Some(source) = filter.adopted_from {
            out.push(self.term(f.adopted_from, &source.to_hex()));
        }
        if let Some(s) = filter.setting {
            out.push(self.term(f.setting, s.slug()));
        }
        if let Some(owners) = &filter.owners {
            out.push(Box::new(BooleanQuery::new(
                owners
                    .iter()
                    .map(|o| (Occur::Should, self.term(f.owner, &o.to_hex())))
                    .collect(),
            )));
        }
        if let Some(before) = filter.review_due_before {
            out.push(Box::new(RangeQuery::new(
                Bound::Unbounded,
                Bound::Excluded(Term::from_field_i64(f.review_due, day_number(before))),
            )));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Item `[n; 16]` of one establishment, at version 1, with `content`.
    fn test_item(n: u8, content: gatehouse_protocol::item::ItemContent) -> Item {
        Item {
            id: ItemId([n; 16]),
            owner: gatehouse_protocol::id::EstablishmentId([1; 16]),
            version: 1,
            content,
            authors: Vec::new(),
            supersedes: Vec::new(),
            superseded_by: None,
            withdrawn_reason: None,
            adopted_from: None,
            adoption: None,
            allowed_identifiers: Vec::new(),
            measures: Vec::new(),
            progress: None,
            attachments: Vec::new(),
        }
    }

    /// An index without the format this node writes (one an older build
    /// made, whose blocks it may not read) is refused, so it is rebuilt.
    #[test]
    fn an_index_of_another_format_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(SearchIndex::open(dir.path()).expect("new"));
        drop(SearchIndex::open(dir.path()).expect("reopens"));
        std::fs::remove_file(dir.path().join(FORMAT_FILE)).expect("remove");
        assert!(matches!(
            SearchIndex::open(dir.path()),
            Err(SearchError::Format { found }) if found.is_empty()
        ));
        std::fs::write(dir.path().join(FORMAT_FILE), "9").expect("write");
        assert!(matches!(
            SearchIndex::open(dir.path()),
            Err(SearchError::Format { found }) if found == "9"
        ));
    }

    #[test]
    fn stop_words_leave_a_query_unless_nothing_else_is_left() {
        assert_eq!(
            without_stop_words("How do we manage alcohol withdrawal?"),
            "manage alcohol withdrawal?"
        );
        assert_eq!(
            without_stop_words("naloxone on release"),
            "naloxone release"
        );
        assert_eq!(without_stop_words("how to"), "how to");
        assert_eq!(
            without_stop_words("\"naloxone on release\""),
            "\"naloxone on release\""
        );
    }

    #[test]
    fn abbreviations_expand_both_ways() {
        assert!(
            expand_abbreviations("IPRA audit").contains("\"possession risk assessment\"~12"),
            "{}",
            expand_abbreviations("IPRA audit")
        );
        assert!(expand_abbreviations("In-possession risk assessment").ends_with(" ipra"));
        assert_eq!(expand_abbreviations("naloxone"), "naloxone");
        // Only whole words: "most" holds "ost" but is not OST.
        assert_eq!(expand_abbreviations("most"), "most");
    }

    #[test]
    fn query_syntax_never_fails_a_search() {
        let mut index = SearchIndex::in_memory().expect("index");
        let item = test_item(7, crate::sample::synthetic_content(1));
        index.upsert(&item, 0, "").expect("upsert");
        index.commit().expect("commit");
        let filter = Filter::default();
        for q in [
            "body:*",
            "*",
            "title:",
            ":",
            "\"",
            "(",
            ")",
            "[a TO",
            "a AND",
            "NOT",
            "+-",
            "~2",
            "^3",
            "body:[* TO *]",
            "{",
            "\\",
            "id:*",
            "owner:x*",
            "(body:*)",
            "body:*^2",
            "+body:* AND title:*",
            "(* OR body:*)",
            "-(title:*)",
        ] {
            match index.search(q, &filter, 10) {
                Ok(_) | Err(SearchError::BadQuery(_)) => {}
                Err(e) => panic!("{q:?} failed the search: {e}"),
            }
        }
    }

    /// A request asked again is answered from the reader's cache, and a
    /// commit starts a reader whose answers include what it brought.
    #[test]
    fn answers_are_kept_per_commit() {
        let mut index = SearchIndex::in_memory().expect("index");
        let item = |n: u8, title: &str| {
            let mut content = crate::sample::synthetic_content(u64::from(n));
            content.title = title.into();
            test_item(n, content)
        };
        index
            .upsert(&item(1, "Clozapine monitoring"), 0, "")
            .expect("upsert");
        index.commit().expect("commit");
        let filter = Filter::default();
        let req = SearchRequest {
            facets: true,
            ..SearchRequest::relevance("clozapine", &filter, 10)
        };
        let reader = index.reader();
        let first = reader.find(&req).expect("search");
        assert_eq!(first.total, 1);
        assert_eq!(reader.answers.lock().expect("cache").len(), 1);
        let again = reader.find(&req).expect("search");
        assert_eq!(again.hits[0].id, first.hits[0].id);
        assert_eq!(reader.answers.lock().expect("cache").len(), 1);

        index
            .upsert(&item(2, "Clozapine titration"), 0, "")
            .expect("upsert");
        index.commit().expect("commit");
        // The reader of the earlier commit still answers as it did.
        assert_eq!(reader.find(&req).expect("search").total, 1);
        let after = index.reader().find(&req).expect("search");
        assert_eq!(after.total, 2);
    }

    /// Facet counts from the index's columns are what counting the
    /// matching items' own values gives, over several segments, with an
    /// item replaced (its old values no longer counted) and with a query
    /// that matches some items only.
    #[test]
    fn facet_counts_are_the_matching_items_values() {
        let mut index = SearchIndex::in_memory().expect("index");
        let mut items = BTreeMap::new();
        for n in 0..60u8 {
            let mut content = crate::sample::synthetic_content(u64::from(n));
            if n % 3 == 0 {
                content.title = format!("Clozapine monitoring {n}");
            }
            let mut item = test_item(n, content);
            item.owner = gatehouse_protocol::id::EstablishmentId([n % 4; 16]);
            index.upsert(&item, 0, "").expect("upsert");
            items.insert(n, item);
            if n % 20 == 19 {
                index.commit().expect("commit");
            }
        }
        // A revision moves item 3 to another kind and owner.
        let mut revised = items[&3].clone();
        revised.content.kind = gatehouse_protocol::vocab::Kind::Guideline;
        revised.owner = gatehouse_protocol::id::EstablishmentId([9; 16]);
        index.upsert(&revised, 0, "").expect("upsert");
        index.commit().expect("commit");
        items.insert(3, revised);

        let expected = |matching: &dyn Fn(&Item) -> bool| {
            let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            for item in items.values().filter(|i| matching(i)) {
                let c = &item.content;
                let mut values = vec![
                    ("kind", c.kind.slug().to_string()),
                    ("status", c.status.slug().to_string()),
                    ("owner", item.owner.to_hex()),
                ];
                values.extend(c.nations.iter().map(|v| ("nation", v.slug().to_string())));
                values.extend(c.pathways.iter().map(|v| ("pathway", v.slug().to_string())));
                values.extend(c.settings.iter().map(|v| ("setting", v.slug().to_string())));
                for (facet, value) in values {
                    *counts
                        .entry(facet.into())
                        .or_default()
                        .entry(value)
                        .or_default() += 1;
                }
            }
            counts
        };
        let found = |query: &str| {
            let filter = Filter::default();
            let req = SearchRequest {
                facets: true,
                ..SearchRequest::relevance(query, &filter, 10)
            };
            let hits = index.reader().find(&req).expect("search");
            let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            for (facet, values) in hits.facets {
                assert_eq!(values.len(), values.iter().filter(|v| v.count > 0).count());
                for v in values {
                    counts
                        .entry(facet.clone())
                        .or_default()
                        .insert(v.value, v.count);
                }
            }
            (hits.total, counts)
        };
        let (total, counts) = found("");
        assert_eq!(total, 60);
        assert_eq!(counts, expected(&|_| true));
        let says_clozapine = |i: &Item| {
            let c = &i.content;
            [&c.title, &c.summary, &c.body]
                .iter()
                .chain(c.tags.iter().collect::<Vec<_>>().iter())
                .any(|t| t.to_lowercase().contains("clozapine"))
        };
        let (total, counts) = found("clozapine");
        assert!((20..60).contains(&total), "{total} matches");
        assert_eq!(total, items.values().filter(|i| says_clozapine(i)).count());
        assert_eq!(counts, expected(&says_clozapine));
    }
}
