//! Facet counts read from fast fields.
//!
//! Each indexed item carries one `u64` in a fast column: a bit for each
//! vocabulary value it holds (its kind, status, nations, pathways and
//! settings; every vocabulary's values side by side, 51 bits in all), and
//! its owner in a string column. Counting a match is a read of each of
//! those columns (straight from the values: every item has both) and a
//! step per bit set; owners' names are found once per segment for those that matched, and the
//! vocabulary needs none. No term dictionary is walked and no facet path
//! is built per match, as tantivy's `FacetCollector` does.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use gatehouse_protocol::item::Item;
use gatehouse_protocol::vocab::{Kind, Nation, Pathway, Setting, Status};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, ColumnIndex, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::search::{FACETS, FacetCount};

/// The fast column of vocabulary bits.
pub(super) const BITS: &str = "facet_bits";
/// The string column of owners.
pub(super) const OWNER: &str = "owner";

/// The slugs of a vocabulary facet, in bit order (none for the owner).
fn slugs(facet: &str) -> Vec<&'static str> {
    fn of<T: Copy>(all: &[T], slug: fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|v| slug(*v)).collect()
    }
    match facet {
        "kind" => of(Kind::ALL, Kind::slug),
        "status" => of(Status::ALL, Status::slug),
        "nation" => of(Nation::ALL, Nation::slug),
        "pathway" => of(Pathway::ALL, Pathway::slug),
        "setting" => of(Setting::ALL, Setting::slug),
        _ => Vec::new(),
    }
}

/// Each bit's facet and value, in bit order: the vocabularies of
/// [`FACETS`] in their order, each value in its vocabulary's order.
fn bit_names() -> &'static [(&'static str, &'static str)] {
    static NAMES: LazyLock<Vec<(&'static str, &'static str)>> = LazyLock::new(|| {
        FACETS
            .iter()
            .flat_map(|f| slugs(f).into_iter().map(move |v| (*f, v)))
            .collect()
    });
    &NAMES
}

/// The bit of `value` of `facet`.
fn bit(facet: &str, value: &str) -> u64 {
    bit_names()
        .iter()
        .position(|(f, v)| *f == facet && *v == value)
        .filter(|b| *b < 64)
        .map_or(0, |b| 1 << b)
}

/// The vocabulary bits of an item, for the [`BITS`] column.
pub(super) fn bits(item: &Item) -> u64 {
    let c = &item.content;
    let mut out = bit("kind", c.kind.slug()) | bit("status", c.status.slug());
    for n in &c.nations {
        out |= bit("nation", n.slug());
    }
    for p in &c.pathways {
        out |= bit("pathway", p.slug());
    }
    for s in &c.settings {
        out |= bit("setting", s.slug());
    }
    out
}

/// Counts the facets of every match.
pub(super) struct FacetCounter;

/// What one segment's (or all segments') matches hold: counts by
/// vocabulary bit, and by owner.
#[derive(Debug)]
pub(super) struct Tally {
    by_bit: [u64; 64],
    owners: BTreeMap<String, u64>,
}

impl Tally {
    fn empty() -> Self {
        Self {
            by_bit: [0; 64],
            owners: BTreeMap::new(),
        }
    }

    /// The counts by facet, each facet's values most held first (then by
    /// name), values no match holds left out.
    pub(super) fn into_counts(self) -> BTreeMap<String, Vec<FacetCount>> {
        let mut out: BTreeMap<String, Vec<FacetCount>> = FACETS
            .iter()
            .map(|f| ((*f).to_string(), Vec::new()))
            .collect();
        for ((facet, value), count) in bit_names().iter().zip(self.by_bit) {
            if count > 0
                && let Some(counts) = out.get_mut(*facet)
            {
                counts.push(FacetCount {
                    value: value.to_string(),
                    count,
                });
            }
        }
        if let Some(counts) = out.get_mut("owner") {
            counts.extend(
                self.owners
                    .into_iter()
                    .map(|(value, count)| FacetCount { value, count }),
            );
        }
        for counts in out.values_mut() {
            counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        }
        out
    }
}

/// One segment's counting.
pub(super) struct SegmentTally {
    bits: Option<Column<u64>>,
    owners: Option<(StrColumn, Column<u64>)>,
    by_bit: [u64; 64],
    by_owner_ord: Vec<u64>,
}

impl Collector for FacetCounter {
    type Fruit = Tally;
    type Child = SegmentTally;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentTally> {
        let fast = reader.fast_fields();
        let bits = fast.column_opt::<u64>(BITS)?;
        let owners = fast.str(OWNER)?.map(|column| {
            let ords = column.ords().clone();
            (column, ords)
        });
        let by_owner_ord = vec![0; owners.as_ref().map_or(0, |(c, _)| c.num_terms())];
        Ok(SegmentTally {
            bits,
            owners,
            by_bit: [0; 64],
            by_owner_ord,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Tally>) -> tantivy::Result<Tally> {
        let mut all = Tally::empty();
        for fruit in fruits {
            for (sum, count) in all.by_bit.iter_mut().zip(fruit.by_bit) {
                *sum += count;
            }
            for (owner, count) in fruit.owners {
                *all.owners.entry(owner).or_default() += count;
            }
        }
        Ok(all)
    }
}

/// A document's value in a column that holds one per document (every
/// item has its bits and its owner): read straight from the values,
/// without the general path through the column's index.
#[inline]
fn value(column: &Column<u64>, doc: DocId) -> Option<u64> {
    match column.index {
        ColumnIndex::Full => Some(column.values.get_val(doc)),
        _ => column.first(doc),
    }
}

impl SegmentTally {
    fn count_bits(&mut self, mut bits: u64) {
        while bits != 0 {
            self.by_bit[bits.trailing_zeros() as usize] += 1;
            bits &= bits - 1;
        }
    }

    fn count_owner(&mut self, ord: u64) {
        if let Some(n) = usize::try_from(ord)
            .ok()
            .and_then(|o| self.by_owner_ord.get_mut(o))
        {
            *n += 1;
        }
    }
}

impl SegmentCollector for SegmentTally {
    type Fruit = Tally;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(bits) = self.bits.as_ref().and_then(|c| value(c, doc)) {
            self.count_bits(bits);
        }
        if let Some(ord) = self.owners.as_ref().and_then(|(_, ords)| value(ords, doc)) {
            self.count_owner(ord);
        }
    }

    fn harvest(self) -> Tally {
        let mut owners = BTreeMap::new();
        if let Some((column, _)) = &self.owners {
            let mut name = String::new();
            for (ord, count) in self.by_owner_ord.iter().enumerate() {
                if *count > 0 && column.ord_to_str(ord as u64, &mut name).unwrap_or(false) {
                    owners.insert(name.clone(), *count);
                }
            }
        }
        Tally {
            by_bit: self.by_bit,
            owners,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every vocabulary value has a bit of its own in the one `u64`.
    #[test]
    fn every_vocabulary_value_has_a_bit() {
        let names = bit_names();
        assert!(names.len() <= 64, "{} values", names.len());
        let mut seen = 0u64;
        for (facet, value) in names {
            let b = bit(facet, value);
            assert_eq!(b.count_ones(), 1, "{facet}={value}");
            assert_eq!(seen & b, 0, "{facet}={value}");
            seen |= b;
        }
    }
}
