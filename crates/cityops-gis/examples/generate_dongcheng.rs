//! Generates config/geo/dongcheng-grid.geojson: 100 m unit cells of 东城区 from its GCJ-02 boundary.
//!
//! Run with `cargo run -p cityops-gis --example generate_dongcheng --release`. Arguments, both optional:
//! the boundary file and the output file (defaults: the files in config/geo). Prints what it made so
//! that a changed grid shows up in review, not only in the diff of a large file.

use anyhow::{Context, Result};
use cityops_gis::grid::geodesic_area_m2;
use cityops_gis::{GridOptions, generate_grid, read_boundary_geojson};
use std::path::PathBuf;
use std::time::Instant;

/// 6 decimals are about 0.1 m, far finer than the boundary's 1/1024° quantisation.
const COORDINATE_DECIMALS: u32 = 6;

fn main() -> Result<()> {
    let config_geo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/geo");
    let mut args = std::env::args_os().skip(1);
    let input = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| config_geo.join("dongcheng.geojson"));
    let output = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| config_geo.join("dongcheng-grid.geojson"));

    let text =
        std::fs::read_to_string(&input).with_context(|| format!("reading {}", input.display()))?;
    let boundary = read_boundary_geojson(&text)?;
    let started = Instant::now();
    let grid = generate_grid(&boundary, &GridOptions::default())?;
    let elapsed = started.elapsed();

    let boundary_area = geodesic_area_m2(&grid.boundary, grid.datum);
    let cells_area: f64 = grid.cells.iter().map(|cell| cell.area_m2).sum();
    let full = grid
        .cells
        .iter()
        .filter(|cell| cell.area_m2 > 9_900.0)
        .count();
    let smallest = grid
        .cells
        .iter()
        .map(|cell| cell.area_m2)
        .fold(f64::INFINITY, f64::min);
    let below_1000 = grid
        .cells
        .iter()
        .filter(|cell| cell.area_m2 < 1_000.0)
        .count();
    let largest_community = grid
        .communities
        .iter()
        .map(|community| {
            grid.cells
                .iter()
                .filter(|cell| cell.community_code == community.code)
                .count()
        })
        .max()
        .unwrap_or_default();
    let street_parts: Vec<usize> = grid
        .streets
        .iter()
        .map(|street| street.polygon.0.len())
        .collect();
    let community_parts: usize = grid
        .communities
        .iter()
        .filter(|c| c.polygon.0.len() > 1)
        .count();

    let geojson = grid.to_geojson(Some(COORDINATE_DECIMALS));
    std::fs::write(&output, &geojson).with_context(|| format!("writing {}", output.display()))?;

    println!(
        "boundary   {} ({:.3} km² on the ground)",
        input.display(),
        boundary_area / 1e6
    );
    println!("generated  in {elapsed:.2?}");
    println!(
        "streets    {} (parts per street: {street_parts:?})",
        grid.streets.len()
    );
    println!(
        "communities {} ({community_parts} in more than one part; largest holds {largest_community} cells)",
        grid.communities.len()
    );
    println!(
        "cells      {} ({full} full, {} clipped, {below_1000} below 1,000 m², smallest {smallest:.1} m²)",
        grid.cells.len(),
        grid.cells.len() - full
    );
    println!(
        "area       cells {:.3} km² vs boundary {:.3} km²: error {:+.5}%",
        cells_area / 1e6,
        boundary_area / 1e6,
        (cells_area - boundary_area) / boundary_area * 100.0
    );
    println!("wrote      {} ({} bytes)", output.display(), geojson.len());
    Ok(())
}
