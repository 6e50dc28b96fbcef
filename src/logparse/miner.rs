//! Online template mining: one pass, one global configuration, bounded state.
//!
//! Two levels. A message's *shape* is its masked template (`mask`): digits, paths, times and
//! addresses are already variables there, so most messages of one event share a shape
//! exactly and are found by one hash lookup. Variables without digits (user names, host
//! names) give one shape per value; they are found by *slots*: the shape with one word
//! replaced by `<*>`. A slot whose words are many and each rare (`user alice`, `user bob`,
//! `user carol`, ...) is a variable place, and every shape in it reports the slot's
//! template; a slot with few, frequent words (`VM Started`, `VM Paused`) stays constant.
//! The decision is made from counts each time a message is resolved, so it improves as
//! evidence comes in and is the same for the same history (deterministic, replayable).
//!
//! Template ids are a stable hash of the template text: the same template gets the same id
//! in every process and after every restart; restoring the state (`MinerState`) makes the
//! same messages resolve to the same templates as before the restart.

use fnv::FnvHashMap;
use serde::{Deserialize, Serialize};

use super::mask::{Masked, WILDCARD};

/// Tuning of the miner. One configuration for every kind of log; the defaults are what the
/// Loghub-2.0 evaluation in BENCHMARKS.md uses.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    /// Most shapes kept; the least recently seen are forgotten beyond it.
    pub max_shapes: usize,
    /// Fewest distinct words at one place before it can be a variable.
    pub min_distinct: usize,
    /// A place is a variable when its words occur at most this many times each on average.
    pub max_mean_repeats: f64,
    /// A place with this many distinct words is a variable however often each occurs.
    pub many_distinct: usize,
    /// Fewest other literal words a message needs before one of its words may become a
    /// variable (`sendSyncFailedBroadcast` alone, or `tickTime set to 2000`, stay as they are).
    pub min_anchors: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            max_shapes: 100_000,
            min_distinct: 3,
            max_mean_repeats: 4.0,
            many_distinct: 8,
            min_anchors: 3,
        }
    }
}

/// What the miner says about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'m> {
    /// Stable id of the template (16 hex digits of a hash of its text).
    pub template_id: u64,
    /// The template, `<*>` for each parameter.
    pub template: &'m str,
    /// Byte ranges of the parameters in the message, in order.
    pub params: &'m [(u32, u32)],
}

/// FNV-1a over the text: fixed, so ids never change between versions or processes.
pub fn template_id(template: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in template.as_bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Hash for the in-memory indexes only (faster than FNV; never persisted or shown).
fn index_key(template: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x5eed).hash_one(template)
}

/// The id as users see it.
pub fn format_id(id: u64) -> String {
    format!("{id:016x}")
}

#[derive(Debug, Clone)]
struct Shape {
    template: String,
    /// `index_key` of the template.
    key: u64,
    /// `template_id` of the template.
    id: u64,
    units: Vec<UnitSpan>,
    count: u64,
    last_seen: u64,
    /// (unit index, slot index) for each word-like literal unit.
    slots: Vec<(u16, u32)>,
}

#[derive(Debug, Clone, Default)]
struct Slot {
    key: u64,
    /// Shapes with a literal word at this place.
    members: Vec<u32>,
    /// Messages seen across the members.
    total: u64,
    /// The words at this place have numbers in them.
    numbered: bool,
    /// Shapes whose own template is this slot's: a value at this place was already masked
    /// as a variable (a number, `root`), strong evidence that the place is variable.
    native: u32,
    /// Text and id of the template, built the first time it is reported.
    template: Option<(Box<str>, u64)>,
}

/// Where a unit sits in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitSpan {
    pub start: u32,
    pub end: u32,
    pub variable: bool,
    pub wordlike: bool,
    pub numbered: bool,
}

/// One persisted shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeState {
    pub template: String,
    pub units: Vec<UnitSpan>,
    pub count: u64,
    pub last_seen: u64,
}

/// The miner's state as persisted: enough to resolve messages exactly as before.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinerState {
    /// Format version of this structure.
    pub version: u32,
    /// Messages seen so far (the recency clock).
    pub seen: u64,
    /// Shapes, least recently seen first.
    pub shapes: Vec<ShapeState>,
}

const STATE_VERSION: u32 = 1;

/// The online template miner.
#[derive(Debug, Clone)]
pub struct TemplateMiner {
    config: MinerConfig,
    shapes: Vec<Option<Shape>>,
    free_shapes: Vec<u32>,
    by_template: FnvHashMap<u64, Vec<u32>>,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    slot_by_key: FnvHashMap<u64, u32>,
    live_shapes: usize,
    seen: u64,
    masked: Masked,
    scratch: String,
    params: Vec<(u32, u32)>,
}

impl TemplateMiner {
    pub fn new(config: MinerConfig) -> Self {
        Self {
            config,
            shapes: Vec::new(),
            free_shapes: Vec::new(),
            by_template: FnvHashMap::default(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            slot_by_key: FnvHashMap::default(),
            live_shapes: 0,
            seen: 0,
            masked: Masked::default(),
            scratch: String::new(),
            params: Vec::new(),
        }
    }

    /// Number of shapes (distinct masked templates) held.
    pub fn shapes(&self) -> usize {
        self.live_shapes
    }

    /// Learns from `message` and returns its template.
    pub fn parse(&mut self, message: &str) -> Parsed<'_> {
        self.seen += 1;
        self.masked.mask(message);
        let shape = self.find_or_add_shape();
        self.observe(shape);
        self.resolve(shape)
    }

    /// Returns the template `message` has now, without learning from it.
    pub fn classify(&mut self, message: &str) -> Parsed<'_> {
        self.masked.mask(message);
        match self.lookup(index_key(&self.masked.template)) {
            Some(shape) => self.resolve(shape),
            None => {
                self.params.clear();
                let variables = self.masked.units.iter().filter(|u| u.variable);
                self.params.extend(variables.map(|u| (u.start, u.end)));
                Parsed {
                    template_id: template_id(&self.masked.template),
                    template: &self.masked.template,
                    params: &self.params,
                }
            }
        }
    }

    fn lookup(&self, hash: u64) -> Option<u32> {
        let candidates = self.by_template.get(&hash)?;
        candidates.iter().copied().find(|&s| {
            self.shapes[s as usize]
                .as_ref()
                .is_some_and(|shape| shape.template == self.masked.template)
        })
    }

    fn find_or_add_shape(&mut self) -> u32 {
        let hash = index_key(&self.masked.template);
        if let Some(shape) = self.lookup(hash) {
            return shape;
        }
        let units = self
            .masked
            .units
            .iter()
            .map(|u| UnitSpan {
                start: u.tpl_start,
                end: u.tpl_end,
                variable: u.variable,
                wordlike: u.wordlike,
                numbered: u.numbered,
            })
            .collect();
        self.add_shape(self.masked.template.clone(), units)
    }

    fn add_shape(&mut self, template: String, units: Vec<UnitSpan>) -> u32 {
        let hash = index_key(&template);
        let id = template_id(&template);
        if self.live_shapes >= self.config.max_shapes.max(1) {
            self.evict();
        }
        let shape = Shape {
            template,
            key: hash,
            id,
            units,
            count: 0,
            last_seen: 0,
            slots: Vec::new(),
        };
        let index = match self.free_shapes.pop() {
            Some(i) => {
                self.shapes[i as usize] = Some(shape);
                i
            }
            None => {
                self.shapes.push(Some(shape));
                (self.shapes.len() - 1) as u32
            }
        };
        self.live_shapes += 1;
        self.by_template.entry(hash).or_default().push(index);
        if let Some(&slot) = self.slot_by_key.get(&hash) {
            self.slots[slot as usize].native += 1;
        }
        self.join_slots(index);
        index
    }

    /// Registers a new shape in the slot of each of its word-like units.
    fn join_slots(&mut self, index: u32) {
        let shape = self.shapes[index as usize].as_ref().expect("live shape");
        let wordlike: Vec<(u16, u32, u32, bool)> = shape
            .units
            .iter()
            .enumerate()
            .filter(|(_, u)| u.wordlike)
            .map(|(i, u)| (i as u16, u.start, u.end, u.numbered))
            .collect();
        let template = shape.template.clone();
        let mut joined = Vec::with_capacity(wordlike.len());
        if wordlike.len() <= self.config.min_anchors {
            return;
        }
        for (unit, start, end, numbered) in wordlike {
            self.scratch.clear();
            self.scratch.push_str(&template[..start as usize]);
            self.scratch.push_str(WILDCARD);
            self.scratch.push_str(&template[end as usize..]);
            let key = index_key(&self.scratch);
            let slot = match self.slot_by_key.get(&key) {
                Some(&slot) => slot,
                None => {
                    let slot = Slot {
                        key,
                        numbered,
                        native: self.by_template.get(&key).map_or(0, |s| s.len() as u32),
                        ..Slot::default()
                    };
                    let i = match self.free_slots.pop() {
                        Some(i) => {
                            self.slots[i as usize] = slot;
                            i
                        }
                        None => {
                            self.slots.push(slot);
                            (self.slots.len() - 1) as u32
                        }
                    };
                    self.slot_by_key.insert(key, i);
                    i
                }
            };
            self.slots[slot as usize].members.push(index);
            joined.push((unit, slot));
        }
        if let Some(shape) = self.shapes[index as usize].as_mut() {
            shape.slots = joined;
        }
    }

    fn observe(&mut self, index: u32) {
        let shape = self.shapes[index as usize].as_mut().expect("live shape");
        shape.count += 1;
        shape.last_seen = self.seen;
        for &(_, slot) in &shape.slots {
            self.slots[slot as usize].total += 1;
        }
    }

    fn slot_is_variable(&self, slot: &Slot) -> bool {
        let distinct = slot.members.len();
        (slot.native > 0 && distinct >= 1)
            || distinct >= self.config.min_distinct.max(2)
                && (slot.numbered
                    || distinct >= self.config.many_distinct
                    || (slot.total as f64) <= self.config.max_mean_repeats * distinct as f64)
    }

    fn resolve(&mut self, index: u32) -> Parsed<'_> {
        let shape = self.shapes[index as usize].as_ref().expect("live shape");
        // The variable slot with the most distinct words wins; ties go to the first place.
        let mut best: Option<(u16, u32, usize)> = None;
        for &(unit, slot) in &shape.slots {
            let s = &self.slots[slot as usize];
            if self.slot_is_variable(s) && best.is_none_or(|(_, _, d)| s.members.len() > d) {
                best = Some((unit, slot, s.members.len()));
            }
        }
        self.params.clear();
        for (i, u) in self.masked.units.iter().enumerate() {
            if u.variable || best.is_some_and(|(unit, _, _)| usize::from(unit) == i) {
                self.params.push((u.start, u.end));
            }
        }
        let Some((unit, slot, _)) = best else {
            let shape = self.shapes[index as usize].as_ref().expect("live shape");
            return Parsed {
                template_id: shape.id,
                template: &shape.template,
                params: &self.params,
            };
        };
        if self.slots[slot as usize].template.is_none() {
            let UnitSpan { start, end, .. } = shape.units[usize::from(unit)];
            let text = &shape.template;
            let mut t = String::with_capacity(text.len());
            t.push_str(&text[..start as usize]);
            t.push_str(WILDCARD);
            t.push_str(&text[end as usize..]);
            let id = template_id(&t);
            self.slots[slot as usize].template = Some((t.into_boxed_str(), id));
        }
        let (template, template_id) = self.slots[slot as usize]
            .template
            .as_ref()
            .expect("built above");
        Parsed {
            template_id: *template_id,
            template,
            params: &self.params,
        }
    }

    /// Forgets the least recently seen tenth of the shapes.
    fn evict(&mut self) {
        let mut ages: Vec<(u64, u32)> = self
            .shapes
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (s.last_seen, i as u32)))
            .collect();
        ages.sort_unstable();
        let n = (ages.len() / 10).max(1);
        for &(_, index) in &ages[..n] {
            self.remove_shape(index);
        }
    }

    fn remove_shape(&mut self, index: u32) {
        let Some(shape) = self.shapes[index as usize].take() else {
            return;
        };
        self.live_shapes -= 1;
        self.free_shapes.push(index);
        if let Some(list) = self.by_template.get_mut(&shape.key) {
            list.retain(|&s| s != index);
            if list.is_empty() {
                self.by_template.remove(&shape.key);
            }
        }
        if let Some(&slot) = self.slot_by_key.get(&shape.key) {
            let s = &mut self.slots[slot as usize];
            s.native = s.native.saturating_sub(1);
        }
        for &(_, slot) in &shape.slots {
            let s = &mut self.slots[slot as usize];
            s.members.retain(|&m| m != index);
            s.total = s.total.saturating_sub(shape.count);
            if s.members.is_empty() {
                self.slot_by_key.remove(&s.key);
                *s = Slot::default();
                self.free_slots.push(slot);
            }
        }
    }

    /// The state to persist.
    pub fn state(&self) -> MinerState {
        let mut shapes: Vec<ShapeState> = self
            .shapes
            .iter()
            .flatten()
            .map(|s| ShapeState {
                template: s.template.clone(),
                units: s.units.clone(),
                count: s.count,
                last_seen: s.last_seen,
            })
            .collect();
        shapes.sort_by_key(|s| s.last_seen);
        MinerState {
            version: STATE_VERSION,
            seen: self.seen,
            shapes,
        }
    }

    /// Rebuilds a miner from persisted state.
    pub fn from_state(config: MinerConfig, state: &MinerState) -> Result<Self, String> {
        if state.version != STATE_VERSION {
            return Err(format!(
                "template state version {} is not the supported version {STATE_VERSION}",
                state.version
            ));
        }
        let mut miner = Self::new(config);
        for stored in &state.shapes {
            let valid = stored.units.iter().all(|u| {
                u.start <= u.end
                    && stored.template.is_char_boundary(u.start as usize)
                    && stored.template.is_char_boundary(u.end as usize)
                    && (u.end as usize) <= stored.template.len()
            });
            if !valid {
                return Err(format!(
                    "template state: units out of range in {:?}",
                    stored.template
                ));
            }
            let index = miner.add_shape(stored.template.clone(), stored.units.clone());
            let shape = miner.shapes[index as usize].as_mut().expect("live shape");
            shape.count = stored.count;
            shape.last_seen = stored.last_seen;
            for &(_, slot) in &shape.slots {
                miner.slots[slot as usize].total += stored.count;
            }
        }
        miner.seen = state.seen;
        Ok(miner)
    }
}

#[cfg(test)]
#[path = "miner_tests.rs"]
mod tests;
