//! Splitting cells into a given number of compact, connected groups (streets, then communities).
//!
//! Real streets and communities follow roads and history, which a demo cannot know. Cutting the set of
//! cell centres in two along its longer side, with the halves sized in proportion to the groups each must
//! hold, gives groups of nearly equal cell counts that are compact ([`bisect_into_groups`]). On a concave
//! boundary a straight cut can leave a group in pieces, so [`join_stray_parts`] then hands every part cut
//! off from its group's main part to the neighbouring group it borders most. Both steps are
//! deterministic: ties are broken by the other axis, then by position or group order.

use std::collections::{BTreeMap, BTreeSet};

/// A cell centre in local metres: `east` grows eastwards, `north` grows northwards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PlanePoint {
    pub east: f64,
    pub north: f64,
}

/// Splits `members` (indices into `points`) into `groups` groups (fewer if there are fewer members).
///
/// Groups come out west before east and north before south at each cut, so numbering them in order
/// reads like a map.
pub(crate) fn bisect_into_groups(
    points: &[PlanePoint],
    members: Vec<usize>,
    groups: usize,
) -> Vec<Vec<usize>> {
    let groups = groups.min(members.len());
    let mut out = Vec::with_capacity(groups);
    bisect_into(points, members, groups, &mut out);
    out
}

fn bisect_into(
    points: &[PlanePoint],
    mut members: Vec<usize>,
    groups: usize,
    out: &mut Vec<Vec<usize>>,
) {
    if groups <= 1 {
        if !members.is_empty() {
            out.push(members);
        }
        return;
    }
    let (mut min_east, mut max_east) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut min_north, mut max_north) = (f64::INFINITY, f64::NEG_INFINITY);
    for &index in &members {
        let p = points[index];
        min_east = min_east.min(p.east);
        max_east = max_east.max(p.east);
        min_north = min_north.min(p.north);
        max_north = max_north.max(p.north);
    }
    if max_east - min_east >= max_north - min_north {
        // West to east; within the same column north first.
        members.sort_by(|&a, &b| {
            let (pa, pb) = (points[a], points[b]);
            pa.east
                .total_cmp(&pb.east)
                .then(pb.north.total_cmp(&pa.north))
                .then(a.cmp(&b))
        });
    } else {
        // North to south; within the same row west first.
        members.sort_by(|&a, &b| {
            let (pa, pb) = (points[a], points[b]);
            pb.north
                .total_cmp(&pa.north)
                .then(pa.east.total_cmp(&pb.east))
                .then(a.cmp(&b))
        });
    }
    let first_groups = groups / 2;
    // Round to the nearest member so both halves keep at least one member per group they must hold.
    let cut = (members.len() * first_groups + groups / 2) / groups;
    let cut = cut.clamp(first_groups, members.len() - (groups - first_groups));
    let second = members.split_off(cut);
    bisect_into(points, members, first_groups, out);
    bisect_into(points, second, groups - first_groups, out);
}

/// Moves every part of a group that is cut off from the group's largest part (no shared edge, see
/// `neighbours`) to the neighbouring group it shares the most edges with, until every group is connected.
/// A part that borders no other group (an island) stays. Groups never become empty.
pub(crate) fn join_stray_parts(groups: &mut [Vec<usize>], neighbours: &[Vec<usize>]) {
    let mut group_of: Vec<Option<usize>> = vec![None; neighbours.len()];
    for (group, members) in groups.iter().enumerate() {
        for &member in members {
            group_of[member] = Some(group);
        }
    }
    // Every move joins a part to a connected neighbour, so the number of parts falls each time.
    let mut moved = true;
    while moved {
        moved = false;
        for group in 0..groups.len() {
            let mut parts = connected_parts(&groups[group], neighbours, &group_of);
            if parts.len() < 2 {
                continue;
            }
            // Keep the largest part; among equals the first, which holds the lowest member.
            let keep = (0..parts.len()).fold(0, |best, i| {
                if parts[i].len() > parts[best].len() {
                    i
                } else {
                    best
                }
            });
            parts.swap_remove(keep);
            for part in parts {
                let mut borders: BTreeMap<usize, usize> = BTreeMap::new();
                for &member in &part {
                    for &next in &neighbours[member] {
                        match group_of[next] {
                            Some(other) if other != group => {
                                *borders.entry(other).or_default() += 1
                            }
                            _ => {}
                        }
                    }
                }
                let Some((target, _)) =
                    borders
                        .iter()
                        .fold(
                            None,
                            |best: Option<(usize, usize)>, (&other, &count)| match best {
                                Some((_, most)) if most >= count => best,
                                _ => Some((other, count)),
                            },
                        )
                else {
                    continue;
                };
                groups[group].retain(|member| !part.contains(member));
                for &member in &part {
                    group_of[member] = Some(target);
                }
                groups[target].extend(part);
                groups[target].sort_unstable();
                moved = true;
            }
        }
    }
}

/// The connected parts of one group, each sorted, in order of their lowest member.
fn connected_parts(
    members: &[usize],
    neighbours: &[Vec<usize>],
    group_of: &[Option<usize>],
) -> Vec<Vec<usize>> {
    let Some(&first) = members.first() else {
        return Vec::new();
    };
    let group = group_of[first];
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    let mut seen = BTreeSet::new();
    let mut parts = Vec::new();
    for &start in &sorted {
        if !seen.insert(start) {
            continue;
        }
        let mut part = vec![start];
        let mut next = 0;
        while next < part.len() {
            for &other in &neighbours[part[next]] {
                if group_of[other] == group && seen.insert(other) {
                    part.push(other);
                }
            }
            next += 1;
        }
        part.sort_unstable();
        parts.push(part);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row_of_points(count: usize) -> Vec<PlanePoint> {
        (0..count)
            .map(|i| PlanePoint {
                east: i as f64,
                north: 0.0,
            })
            .collect()
    }

    #[test]
    fn a_row_splits_west_to_east_into_equal_runs() {
        let points = row_of_points(12);
        let groups = bisect_into_groups(&points, (0..12).collect(), 3);
        assert_eq!(
            groups,
            vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9, 10, 11]]
        );
    }

    #[test]
    fn a_column_splits_north_first() {
        let points: Vec<_> = (0..4)
            .map(|i| PlanePoint {
                east: 0.0,
                north: i as f64,
            })
            .collect();
        let groups = bisect_into_groups(&points, (0..4).collect(), 2);
        assert_eq!(groups, vec![vec![3, 2], vec![1, 0]]);
    }

    #[test]
    fn more_groups_than_members_gives_one_group_each() {
        let points = row_of_points(3);
        assert_eq!(bisect_into_groups(&points, vec![0, 1, 2], 5).len(), 3);
        assert!(bisect_into_groups(&points, vec![], 5).is_empty());
    }

    #[test]
    fn a_cut_off_part_joins_the_group_it_borders_most() {
        // A row of six cells 0-1-2-3-4-5; group 0 holds {0, 1, 4}, group 1 holds {2, 3, 5}.
        let neighbours: Vec<Vec<usize>> = (0..6)
            .map(|i: usize| {
                [i.wrapping_sub(1), i + 1]
                    .into_iter()
                    .filter(|&n| n < 6)
                    .collect()
            })
            .collect();
        let mut groups = vec![vec![0, 1, 4], vec![2, 3, 5]];
        join_stray_parts(&mut groups, &neighbours);
        // 4 borders only group 1 (3 and 5); then group 1 is 2-3-4-5 and connected.
        assert_eq!(groups, vec![vec![0, 1], vec![2, 3, 4, 5]]);
    }

    #[test]
    fn an_island_stays_in_its_group() {
        let neighbours = vec![vec![1], vec![0], vec![]];
        let mut groups = vec![vec![0, 2], vec![1]];
        join_stray_parts(&mut groups, &neighbours);
        assert_eq!(groups, vec![vec![0, 2], vec![1]]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn on_a_full_lattice_every_group_ends_connected(
            rows in 1usize..12, cols in 1usize..12, assignment in proptest::collection::vec(0usize..4, 144),
        ) {
            let cells = rows * cols;
            let neighbours: Vec<Vec<usize>> = (0..cells)
                .map(|i| {
                    let (row, col) = (i / cols, i % cols);
                    let mut list = Vec::new();
                    if row > 0 { list.push(i - cols) }
                    if col > 0 { list.push(i - 1) }
                    if col + 1 < cols { list.push(i + 1) }
                    if row + 1 < rows { list.push(i + cols) }
                    list
                })
                .collect();
            let mut groups = vec![Vec::new(); 4];
            for cell in 0..cells {
                groups[assignment[cell]].push(cell);
            }
            groups.retain(|group| !group.is_empty());
            let count = groups.len();
            join_stray_parts(&mut groups, &neighbours);
            prop_assert_eq!(groups.len(), count);
            let mut group_of = vec![None; cells];
            for (g, members) in groups.iter().enumerate() {
                prop_assert!(!members.is_empty());
                for &m in members { group_of[m] = Some(g) }
            }
            prop_assert!(group_of.iter().all(Option::is_some));
            for members in &groups {
                prop_assert_eq!(connected_parts(members, &neighbours, &group_of).len(), 1, "{:?}", groups);
            }
        }

        #[test]
        fn every_member_lands_in_exactly_one_group_of_balanced_size(
            coords in proptest::collection::vec((0.0..1000.0f64, 0.0..1000.0f64), 1..300),
            groups in 1usize..40,
        ) {
            let points: Vec<_> =
                coords.iter().map(|&(east, north)| PlanePoint { east, north }).collect();
            let result = bisect_into_groups(&points, (0..points.len()).collect(), groups);
            prop_assert_eq!(result.len(), groups.min(points.len()));
            let mut seen: Vec<usize> = result.iter().flatten().copied().collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..points.len()).collect::<Vec<_>>());
            let sizes: Vec<usize> = result.iter().map(Vec::len).collect();
            let (smallest, largest) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            // Halving with rounding keeps the groups within a factor of about two of each other.
            prop_assert!(*largest <= 2 * smallest + 2, "{:?}", sizes);
        }
    }
}
