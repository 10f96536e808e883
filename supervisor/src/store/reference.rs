//! Image references as podman resolves them against its store: full and short names (a
//! short name matches any registry, `localhost/` preferred), IDs and unique ID prefixes,
//! digests; and close names to suggest when nothing matches.

use super::metadata::{is_digest, is_lower_hex, Image};
use super::{Store, StoreError};

/// Shorter ID prefixes match too much to be meant as an ID.
pub(super) const MIN_ID_PREFIX: usize = 3;
pub(super) const MAX_SUGGESTIONS: usize = 5;

/// One way a reference matched: which image, via which stored name, and
/// whether that name is a `localhost/` one (preferred on ambiguity).
pub(super) struct Match {
    pub(super) image: usize,
    pub(super) name: String,
    pub(super) localhost: bool,
}

impl Store {
    pub(super) fn find_image(&self, reference: &str) -> Result<(usize, String), StoreError> {
        let bad = |reason| StoreError::ParseReference {
            reference: reference.to_owned(),
            reason,
        };
        if let Some(hex) = reference.strip_prefix("sha256:") {
            if hex.len() < MIN_ID_PREFIX || hex.len() > 64 || !is_lower_hex(hex) {
                return Err(bad(
                    "sha256: must be followed by 3 to 64 lowercase hex digits",
                ));
            }
            let mut matches = self.id_matches(hex);
            if matches.is_empty() && hex.len() == 64 {
                matches = self.digest_matches(reference);
            }
            return self.pick(reference, matches);
        }
        // Like podman, an ID (prefix) wins over a name that happens to be hex.
        let mut id_ambiguity = None;
        if reference.len() >= MIN_ID_PREFIX && reference.len() <= 64 && is_lower_hex(reference) {
            let matches = self.id_matches(reference);
            match matches.len() {
                0 => {}
                1 => return self.pick(reference, matches),
                _ => id_ambiguity = Some(self.pick(reference, matches)),
            }
        }
        let parsed = parse_name(reference).map_err(bad)?;
        let matches = self.name_matches(&parsed);
        match id_ambiguity {
            Some(err) if matches.is_empty() => err,
            _ => self.pick(reference, matches),
        }
    }

    pub(super) fn id_matches(&self, prefix: &str) -> Vec<Match> {
        self.images
            .iter()
            .enumerate()
            .filter(|(_, image)| image.id.starts_with(prefix))
            .map(|(index, image)| Match {
                image: index,
                name: display_name(image),
                localhost: false,
            })
            .collect()
    }

    pub(super) fn digest_matches(&self, digest: &str) -> Vec<Match> {
        self.images
            .iter()
            .enumerate()
            .filter(|(_, image)| image.digests.iter().any(|d| d == digest))
            .map(|(index, image)| Match {
                image: index,
                name: display_name(image),
                localhost: false,
            })
            .collect()
    }

    pub(super) fn name_matches(&self, wanted: &NameRef) -> Vec<Match> {
        let qualified = is_qualified(wanted.repo);
        let mut matches = Vec::new();
        for (index, image) in self.images.iter().enumerate() {
            for name in &image.names {
                let Ok(stored) = parse_name(name) else {
                    continue;
                };
                let Some(localhost) = repo_matches(wanted.repo, qualified, stored.repo) else {
                    continue;
                };
                let hit = match wanted.digest {
                    Some(digest) => {
                        stored.digest == Some(digest) || image.digests.iter().any(|d| d == digest)
                    }
                    // No tag means :latest, on both sides.
                    None => {
                        stored.digest.is_none()
                            && stored.tag.unwrap_or("latest") == wanted.tag.unwrap_or("latest")
                    }
                };
                if hit {
                    matches.push(Match {
                        image: index,
                        name: name.clone(),
                        localhost,
                    });
                }
            }
        }
        matches
    }

    pub(super) fn pick(
        &self,
        reference: &str,
        matches: Vec<Match>,
    ) -> Result<(usize, String), StoreError> {
        let mut images: Vec<usize> = matches.iter().map(|m| m.image).collect();
        images.sort_unstable();
        images.dedup();
        let mut local: Vec<usize> = matches
            .iter()
            .filter(|m| m.localhost)
            .map(|m| m.image)
            .collect();
        local.sort_unstable();
        local.dedup();
        let chosen = match (images.as_slice(), local.as_slice()) {
            ([], _) => {
                return Err(StoreError::ImageNotFound {
                    reference: reference.to_owned(),
                    suggestions: self.suggestions(reference),
                })
            }
            ([only], _) | (_, [only]) => *only,
            _ => {
                let mut candidates: Vec<String> = matches.into_iter().map(|m| m.name).collect();
                candidates.sort();
                candidates.dedup();
                return Err(StoreError::Ambiguous {
                    reference: reference.to_owned(),
                    candidates,
                });
            }
        };
        // Report the localhost name if that is how it matched, else the
        // first in sort order, so the answer is stable.
        let name = matches
            .iter()
            .filter(|m| m.image == chosen)
            .min_by_key(|m| (!m.localhost, m.name.clone()))
            .map(|m| m.name.clone())
            .unwrap_or_else(|| display_name(&self.images[chosen]));
        Ok((chosen, name))
    }

    pub(super) fn suggestions(&self, reference: &str) -> Vec<String> {
        let wanted = parse_name(reference)
            .map(|n| last_component(n.repo))
            .unwrap_or(reference);
        let mut scored: Vec<(usize, String)> = self
            .image_names()
            .into_iter()
            .filter_map(|name| {
                let last = parse_name(&name).map(|n| last_component(n.repo)).ok()?;
                let distance = if last == wanted {
                    0
                } else {
                    edit_distance(wanted, last).min(edit_distance(reference, &name))
                };
                (distance <= 2.max(wanted.len() / 4)).then_some((distance, name))
            })
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(MAX_SUGGESTIONS)
            .map(|(_, name)| name)
            .collect()
    }
}

pub(super) fn display_name(image: &Image) -> String {
    image
        .names
        .first()
        .cloned()
        .unwrap_or_else(|| image.id[..12].to_owned())
}

pub(super) struct NameRef<'a> {
    pub(super) repo: &'a str,
    pub(super) tag: Option<&'a str>,
    pub(super) digest: Option<&'a str>,
}

pub(super) fn parse_name(s: &str) -> Result<NameRef<'_>, &'static str> {
    if s.is_empty() || s.len() > 1024 {
        return Err("it must be 1 to 1024 characters");
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace or control characters");
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) if is_digest(digest) => (rest, Some(digest)),
        Some(_) => return Err("the part after @ must be sha256:<64 hex digits>"),
        None => (s, None),
    };
    // A ':' after the last '/' starts a tag; one before it is a registry port.
    let base = rest.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match rest[base..].rfind(':') {
        Some(i) => (&rest[..base + i], Some(&rest[base + i + 1..])),
        None => (rest, None),
    };
    if repo.split('/').any(str::is_empty) || tag == Some("") {
        return Err("it has an empty name component or tag");
    }
    Ok(NameRef { repo, tag, digest })
}

/// Whether a repository names its registry, as podman decides it.
pub(super) fn is_qualified(repo: &str) -> bool {
    repo.split_once('/')
        .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost")
}

pub(super) fn last_component(repo: &str) -> &str {
    repo.rsplit('/').next().unwrap_or(repo)
}

/// Some(is_localhost) if the stored repository satisfies the wanted one.
pub(super) fn repo_matches(wanted: &str, qualified: bool, stored: &str) -> Option<bool> {
    let localhost = stored.starts_with("localhost/");
    if qualified {
        // docker.io/foo is stored as docker.io/library/foo.
        let official = wanted
            .strip_prefix("docker.io/")
            .filter(|rest| !rest.contains('/'))
            .is_some_and(|rest| stored.strip_prefix("docker.io/library/") == Some(rest));
        return (stored == wanted || official).then_some(localhost);
    }
    let official =
        !wanted.contains('/') && stored.strip_prefix("docker.io/library/") == Some(wanted);
    let any_registry = stored.split_once('/').is_some_and(|(registry, rest)| {
        rest == wanted && is_qualified(stored) && !registry.is_empty()
    });
    (official || any_registry).then_some(localhost)
}

/// Levenshtein distance; long inputs are not worth suggesting (and would be
/// quadratic), so they count as far apart.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 128 || b.len() > 128 {
        return usize::MAX;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
