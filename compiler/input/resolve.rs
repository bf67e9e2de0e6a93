//! Stage 3: follow `extends` chains and merge each site's layers into one
//! spanned tree. Tables merge key by key; for scalars and arrays the child
//! wins. Every value in the merged tree keeps the global span of the file
//! that set it, which is its provenance.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;
use toml::de::DeValue;

use crate::base::codes::Code;
use crate::base::diagnostic::{Diagnostic, Diagnostics, did_you_mean};
use crate::base::names::is_valid_name;
use crate::base::source::{FileId, SourceMap, Span};
use crate::input::layer::Layer;
use crate::input::load::Inputs;
use crate::input::parse::{ParsedFile, Table, parse_file, read_layer};

/// Longest `extends` chain accepted; deeper is surely a mistake.
pub const MAX_CHAIN: usize = 32;

/// Keys that describe a file's place in the hierarchy, not the site.
const META_KEYS: &[&str] = &["extends", "profile"];

/// One site with its layers merged.
#[derive(Debug, Clone)]
pub struct ResolvedSite<'a> {
    pub name: String,
    pub file: FileId,
    /// Profile names from the site's own profile to the root.
    pub chain: Vec<String>,
    /// Files of the chain, root profile first, the site file last.
    pub chain_files: Vec<FileId>,
    /// The merged tree (global spans = provenance).
    pub table: Spanned<Table<'a>>,
    /// The merged tree, typed.
    pub layer: Layer,
    /// Span of the site file's `profile = ...` value.
    pub profile_span: Option<Span>,
    /// The dotted paths of the entries removed for a mistake in any file
    /// of the chain or in the merged tree (each reported): validation does
    /// not call them missing.
    pub removed: Vec<String>,
    /// Whether the site's whole profile chain was found. When not, the
    /// site is validated for what its files say, and a key the missing
    /// profiles would set is not called missing.
    pub chain_complete: bool,
    /// Whether the site is whole: a usable name, its whole chain, every
    /// file of it read without a mistake. A site that is not is still
    /// validated, so that one run reports every mistake that can be known,
    /// but it never becomes a valid site.
    pub whole: bool,
}

/// All profiles and sites, parsed.
pub struct Fleet<'a> {
    pub profiles: BTreeMap<String, ParsedFile<'a>>,
    pub sites: Vec<ResolvedSite<'a>>,
}

/// Parse every input and resolve every site's chain.
pub fn resolve<'a>(inputs: &'a Inputs, diags: &mut Diagnostics) -> Fleet<'a> {
    let mut sites = Vec::new();
    let profiles = resolve_each(inputs, diags, |rs, _| sites.push(rs));
    Fleet { profiles, sites }
}

/// [`resolve`], handing each resolved site to `each` as soon as it is
/// merged, so a caller that validates and drops it never holds the whole
/// fleet's merged trees. Returns the parsed profiles.
pub fn resolve_each<'a>(
    inputs: &'a Inputs,
    diags: &mut Diagnostics,
    mut each: impl FnMut(ResolvedSite<'a>, &mut Diagnostics),
) -> BTreeMap<String, ParsedFile<'a>> {
    let profiles = parse_profiles(inputs, diags);
    // Names of profiles that exist, even if they failed to parse: a site
    // naming one of them should not also get an "unknown profile" error.
    let known: BTreeSet<&str> = inputs.profiles.keys().map(String::as_str).collect();
    check_extends(&profiles, &known, diags);
    check_chains(&profiles, diags);
    let mut sites = SiteResolver {
        sources: &inputs.sources,
        profiles: &profiles,
        known: &known,
        names: BTreeMap::new(),
        merged_chains: BTreeMap::new(),
    };
    for id in &inputs.sites {
        if let Some(site) = sites.resolve(*id, diags) {
            each(site, diags);
        }
    }
    profiles
}

/// Every profile file with a valid name, parsed (those that parse).
fn parse_profiles<'a>(
    inputs: &'a Inputs,
    diags: &mut Diagnostics,
) -> BTreeMap<String, ParsedFile<'a>> {
    let sources = &inputs.sources;
    let mut profiles = BTreeMap::new();
    for (name, id) in &inputs.profiles {
        let file = sources.file(*id);
        if !is_valid_name(name) {
            diags.push(
                Diagnostic::error(Code::InvalidName, format!("profile name `{name}` is not valid"))
                    .at(file.whole())
                    .help("name profile files with lower-case letters, digits and dashes, e.g. `edge-4gb.toml`"),
            );
            continue;
        }
        if let Some(parsed) = parse_file(sources, *id, diags) {
            if let Some(p) = &parsed.layer.profile {
                diags.push(
                    Diagnostic::error(Code::MisplacedKey, "`profile` belongs in a site file")
                        .at(p.span())
                        .help("a profile builds on another with `extends = \"NAME\"`"),
                );
            }
            profiles.insert(name.clone(), parsed);
        }
    }
    profiles
}

/// Each profile's `extends` names another profile that exists.
fn check_extends(
    profiles: &BTreeMap<String, ParsedFile<'_>>,
    known: &BTreeSet<&str>,
    diags: &mut Diagnostics,
) {
    for (name, parsed) in profiles {
        if let Some(ext) = &parsed.layer.extends {
            if !known.contains(ext.get_ref().as_str()) {
                diags.push(unknown_profile(ext.get_ref(), ext.span(), known, "extends"));
            } else if ext.get_ref() == name {
                diags.push(
                    Diagnostic::error(
                        Code::ExtendsCycle,
                        format!("profile `{name}` extends itself"),
                    )
                    .at(ext.span())
                    .help("remove `extends`, or name another profile"),
                );
            }
        }
    }
}

/// `extends` chains that run in a cycle or deeper than [`MAX_CHAIN`].
/// Cycles: report each once, at the `extends` of its smallest member.
fn check_chains(profiles: &BTreeMap<String, ParsedFile<'_>>, diags: &mut Diagnostics) {
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for name in profiles.keys() {
        let mut seen = vec![name.clone()];
        let mut cur = name.clone();
        while let Some(next) = profiles
            .get(&cur)
            .and_then(|p| p.layer.extends.as_ref())
            .map(|e| e.get_ref().clone())
        {
            if let Some(pos) = seen.iter().position(|s| *s == next) {
                let cycle: Vec<String> = seen[pos..].to_vec();
                let first = cycle.iter().min().cloned().unwrap_or_default();
                if cycle.len() > 1 && reported.insert(first.clone()) {
                    let span = profiles[&first].layer.extends.as_ref().map(|e| e.span());
                    let mut path = cycle.clone();
                    let start = path.iter().position(|p| *p == first).unwrap_or(0);
                    path.rotate_left(start);
                    path.push(first.clone());
                    diags.push(
                        Diagnostic::error(
                            Code::ExtendsCycle,
                            format!(
                                "profiles extend each other in a cycle: {}",
                                path.join(" -> ")
                            ),
                        )
                        .at_opt(span)
                        .label("this `extends` closes the cycle")
                        .help("one profile in the cycle must not extend another"),
                    );
                }
                break;
            }
            seen.push(next.clone());
            if seen.len() > MAX_CHAIN {
                let span = profiles[name].layer.extends.as_ref().map(|e| e.span());
                diags.push(
                    Diagnostic::error(
                        Code::ExtendsDepth,
                        format!("the `extends` chain of `{name}` is deeper than {MAX_CHAIN}"),
                    )
                    .at_opt(span)
                    .help("flatten the profile hierarchy"),
                );
                break;
            }
            cur = next;
        }
    }
}

/// The site files, resolved one at a time against the parsed profiles.
struct SiteResolver<'a, 'p> {
    sources: &'a SourceMap,
    profiles: &'p BTreeMap<String, ParsedFile<'a>>,
    /// Names of profiles that exist, even if they failed to parse.
    known: &'p BTreeSet<&'p str>,
    /// The usable site names seen so far, with their files.
    names: BTreeMap<String, FileId>,
    /// Each profile's chain merged once, shared by the sites that use it.
    merged_chains: BTreeMap<String, Spanned<Table<'a>>>,
}

impl<'a> SiteResolver<'a, '_> {
    /// One site: its file parsed, its profile chain followed and merged
    /// under it. A site with a mistake in its name, its chain or its files
    /// is resolved as far as it can be (reported in `diags`, and not
    /// [`ResolvedSite::whole`]); `None` when its file cannot be read.
    fn resolve(&mut self, id: FileId, diags: &mut Diagnostics) -> Option<ResolvedSite<'a>> {
        let file = self.sources.file(id);
        let (name, named) = self.site_name(id, diags);
        let parsed = parse_file(self.sources, id, diags)?;
        if let Some(e) = &parsed.layer.extends {
            diags.push(
                Diagnostic::error(
                    Code::MisplacedKey,
                    "a site names its profile with `profile`, not `extends`",
                )
                .at(e.span())
                .help(format!("write `profile = \"{}\"`", e.get_ref())),
            );
        }
        // A misplaced `extends` names the profile as well as `profile` would.
        let profile = parsed
            .layer
            .profile
            .as_ref()
            .or(parsed.layer.extends.as_ref());
        let (chain, chain_complete) = match profile {
            None => {
                diags.push(
                    Diagnostic::error(Code::MissingKey, format!("site `{name}` does not name its profile"))
                        .at(file.whole())
                        .help("add `profile = \"NAME\"` with a file name from profiles/, e.g. `profile = \"edge-4gb\"`"),
                );
                (Vec::new(), false)
            }
            Some(profile) if !self.known.contains(profile.get_ref().as_str()) => {
                diags.push(unknown_profile(
                    profile.get_ref(),
                    profile.span(),
                    self.known,
                    "profile",
                ));
                (Vec::new(), false)
            }
            Some(profile) => self.chain(profile.get_ref()),
        };
        let mut removed = parsed.removed.clone();
        for p in &chain {
            removed.extend(self.profiles[p].removed.iter().cloned());
        }
        let mut chain_files: Vec<FileId> =
            chain.iter().rev().map(|p| self.profiles[p].id).collect();
        chain_files.push(id);
        let site_table = without_meta(&parsed.table);
        let table = match self.merged_chain(&chain) {
            Some(mut table) => {
                merge_table(table.get_mut(), site_table.into_inner());
                table
            }
            None => site_table,
        };
        // Each file's date-times went with the file (`parse_file`).
        let read = read_layer::<Layer>(table, Vec::new(), diags);
        removed.extend(read.removed);
        let whole = named && parsed.layer.extends.is_none() && chain_complete && removed.is_empty();
        Some(ResolvedSite {
            name,
            file: id,
            chain,
            chain_files,
            table: read.table,
            layer: read.value?,
            profile_span: profile.map(|p| p.span()),
            removed,
            chain_complete,
            whole,
        })
    }

    /// The site's name, and whether it is usable: valid, and not taken
    /// by an earlier file.
    fn site_name(&mut self, id: FileId, diags: &mut Diagnostics) -> (String, bool) {
        let file = self.sources.file(id);
        let name = file.stem().to_string();
        if !is_valid_name(&name) {
            diags.push(
                Diagnostic::error(Code::InvalidName, format!("site name `{name}` is not valid"))
                    .at(file.whole())
                    .help("site files are named `<name>.toml` with lower-case letters, digits and dashes, at most 63, e.g. `clinic-01.toml`"),
            );
            return (name, false);
        }
        if let Some(first) = self.names.get(&name) {
            diags.push(
                Diagnostic::error(
                    Code::DuplicateSite,
                    format!("site `{name}` is defined twice"),
                )
                .at(file.whole())
                .note(format!(
                    "first defined in {}",
                    self.sources.file(*first).path
                ))
                .help("each site needs one file with a unique name"),
            );
            return (name, false);
        }
        self.names.insert(name.clone(), id);
        (name, true)
    }

    /// The chain from the site's profile up to the root, and whether it
    /// is complete: it stops short at a cycle, at a chain too deep, at a
    /// profile that does not exist or did not parse (each reported with
    /// the profiles).
    fn chain(&self, profile: &str) -> (Vec<String>, bool) {
        let mut chain = Vec::new();
        let mut cur = Some(profile.to_string());
        while let Some(p) = cur {
            if chain.contains(&p) || chain.len() > MAX_CHAIN {
                return (chain, false);
            }
            let Some(parsed) = self.profiles.get(&p) else {
                return (chain, false);
            };
            chain.push(p);
            cur = parsed.layer.extends.as_ref().map(|e| e.get_ref().clone());
            if cur
                .as_ref()
                .is_some_and(|c| !self.known.contains(c.as_str()))
            {
                return (chain, false);
            }
        }
        (chain, true)
    }

    /// The profiles of a chain (from the site's profile to the root)
    /// merged, root first; once per profile. `None` for an empty chain.
    fn merged_chain(&mut self, chain: &[String]) -> Option<Spanned<Table<'a>>> {
        let (root, above) = chain.split_last()?;
        let profiles = self.profiles;
        let merged = self
            .merged_chains
            .entry(chain[0].clone())
            .or_insert_with(|| {
                let mut merged = without_meta(&profiles[root].table);
                for p in above.iter().rev() {
                    merge_table(
                        merged.get_mut(),
                        without_meta(&profiles[p].table).into_inner(),
                    );
                }
                merged
            });
        Some(merged.clone())
    }
}

/// A file's tree without the keys that place it in the hierarchy.
fn without_meta<'a>(table: &Spanned<Table<'a>>) -> Spanned<Table<'a>> {
    let mut t = table.clone();
    for k in META_KEYS {
        t.get_mut().remove(*k);
    }
    t
}

fn unknown_profile(name: &str, span: Span, known: &BTreeSet<&str>, key: &str) -> Diagnostic {
    let d = Diagnostic::error(Code::UnknownProfile, format!("no profile named `{name}`"))
        .at(span)
        .label(format!("`{key}` names a profile that does not exist"));
    match did_you_mean(name, known.iter().copied()) {
        Some(s) => d.help(format!("did you mean `{s}`?")),
        None => d.help(format!(
            "profiles are the files in profiles/: {}",
            known.iter().copied().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Tables whose entries are atomic: a child's entry replaces the parent's
/// whole (a secret reference switched from `env` to `file` must not keep the
/// parent's `env`).
const ATOMIC_ENTRIES: &[&str] = &["secrets"];

/// Deep merge: tables key by key, anything else replaced by the child.
pub fn merge_table<'a>(base: &mut Table<'a>, child: Table<'a>) {
    merge_at(base, child, true);
}

fn merge_at<'a>(base: &mut Table<'a>, child: Table<'a>, deep: bool) {
    for (k, v) in child {
        let key = k.get_ref().to_string();
        let both_tables = deep
            && matches!(v.get_ref(), DeValue::Table(_))
            && matches!(
                base.get(key.as_str()).map(|b| b.get_ref()),
                Some(DeValue::Table(_))
            );
        if both_tables {
            let Some(b) = base.get_mut(key.as_str()) else {
                continue;
            };
            if let (DeValue::Table(bt), DeValue::Table(ct)) = (b.get_mut(), v.into_inner()) {
                merge_at(bt, ct, !ATOMIC_ENTRIES.contains(&key.as_str()));
            }
        } else {
            base.remove(key.as_str());
            base.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::source::{FileKind, SourceMap};

    fn inputs(profiles: &[(&str, &str)], sites: &[(&str, &str)]) -> Inputs {
        let mut inputs = Inputs {
            sources: SourceMap::new(),
            ..Default::default()
        };
        for (name, text) in profiles {
            let id = inputs.sources.add(
                format!("profiles/{name}.toml"),
                FileKind::Profile,
                text.to_string(),
            );
            inputs.profiles.insert(name.to_string(), id);
        }
        for (name, text) in sites {
            let id = inputs.sources.add(
                format!("sites/{name}.toml"),
                FileKind::Site,
                text.to_string(),
            );
            inputs.sites.push(id);
        }
        inputs
    }

    #[test]
    fn three_level_chain_merges_with_provenance() {
        let inputs = inputs(
            &[
                (
                    "base",
                    "description = \"base\"\n[device]\nmemory = \"4GiB\"\ncpus = 2\n[services.api]\nmemory = \"512MiB\"\ncpus = 1\n",
                ),
                (
                    "mid",
                    "extends = \"base\"\n[services.api]\nmemory = \"640MiB\"\n",
                ),
            ],
            &[("s1", "profile = \"mid\"\n[device]\ncpus = 4\n")],
        );
        let mut diags = Diagnostics::new();
        let fleet = resolve(&inputs, &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        let site = &fleet.sites[0];
        assert_eq!(site.chain, vec!["mid", "base"]);
        let api = site.layer.services.as_ref().unwrap().api.as_ref().unwrap();
        let mem = api.memory.as_ref().unwrap();
        assert_eq!(mem.get_ref(), "640MiB");
        assert_eq!(
            inputs.sources.location(&mem.span()).to_string(),
            "profiles/mid.toml:3:10"
        );
        let cpus = api.cpus.as_ref().unwrap();
        assert_eq!(
            inputs.sources.location(&cpus.span()).path,
            "profiles/base.toml"
        );
        let dev_cpus = site.layer.device.as_ref().unwrap().cpus.as_ref().unwrap();
        assert_eq!(
            inputs.sources.location(&dev_cpus.span()).path,
            "sites/s1.toml"
        );
        let dev_mem = site.layer.device.as_ref().unwrap().memory.as_ref().unwrap();
        assert_eq!(
            inputs.sources.location(&dev_mem.span()).path,
            "profiles/base.toml"
        );
    }

    #[test]
    fn a_child_replaces_a_secret_reference_whole() {
        let inputs = inputs(
            &[(
                "base",
                "[secrets]\nDB_PASSWORD = { env = \"DB_PW\" }\nREDIS_PASSWORD = { env = \"R\" }\n",
            )],
            &[(
                "s1",
                "profile = \"base\"\n[secrets]\nDB_PASSWORD = { file = \"/etc/dify/db\" }\n",
            )],
        );
        let mut diags = Diagnostics::new();
        let fleet = resolve(&inputs, &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        let secrets = fleet.sites[0].layer.secrets.clone().unwrap();
        let db = secrets
            .iter()
            .find(|(k, _)| k.get_ref() == "DB_PASSWORD")
            .unwrap()
            .1
            .get_ref()
            .clone();
        let crate::input::layer::SecretValue::Ref(r) = db else {
            panic!("a reference")
        };
        assert_eq!((r.env, r.file.as_deref()), (None, Some("/etc/dify/db")));
        assert!(
            secrets.iter().any(|(k, _)| k.get_ref() == "REDIS_PASSWORD"),
            "other secrets are inherited"
        );
    }

    #[test]
    fn cycles_and_unknown_profiles_are_reported() {
        let inputs = inputs(
            &[
                ("a", "extends = \"b\"\n"),
                ("b", "extends = \"a\"\n"),
                ("c", "extends = \"edge\"\n"),
            ],
            &[("s1", "profile = \"a\"\n"), ("s2", "profile = \"cc\"\n")],
        );
        let mut diags = Diagnostics::new();
        let fleet = resolve(&inputs, &mut diags);
        // Resolved as far as they go, for the mistakes their files hold.
        assert!(fleet.sites.iter().all(|s| !s.whole && !s.chain_complete));
        let codes: Vec<_> = diags.iter().map(|d| d.code).collect();
        assert_eq!(
            codes.iter().filter(|c| **c == Code::ExtendsCycle).count(),
            1,
            "{codes:?}"
        );
        assert_eq!(
            codes.iter().filter(|c| **c == Code::UnknownProfile).count(),
            2,
            "{codes:?}"
        );
        let cc = diags.iter().find(|d| d.message.contains("`cc`")).unwrap();
        assert_eq!(cc.help.as_deref(), Some("did you mean `c`?"));
    }
}
