//! `cityops grid generate`: a unit grid for a district from its boundary.

use anyhow::Context as _;
use cityops_gis::{Datum, GridOptions, generate_grid, read_boundary_geojson};

use crate::cli::GridCommand;

pub fn run(command: &GridCommand) -> anyhow::Result<()> {
    match command {
        GridCommand::Generate {
            boundary,
            division_code,
            name,
            datum,
            cell_size,
            streets,
            communities_per_street,
            out,
        } => {
            let datum = Datum::parse(datum)
                .with_context(|| format!("--datum {datum:?}: expected gcj02 or wgs84"))?;
            let text = std::fs::read_to_string(boundary)
                .with_context(|| format!("cannot read {}", boundary.display()))?;
            let shape = read_boundary_geojson(&text)
                .with_context(|| format!("{} holds no usable boundary", boundary.display()))?;
            let options = GridOptions {
                division_code: division_code.clone(),
                district_name: name.clone(),
                datum,
                cell_size_m: *cell_size,
                streets: *streets,
                communities_per_street: *communities_per_street,
            };
            let grid = generate_grid(&shape, &options)?;
            let geojson = grid.to_geojson(Some(6));
            match out {
                Some(path) => std::fs::write(path, &geojson)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{geojson}"),
            }
            let area: f64 = grid.cells.iter().map(|c| c.area_m2).sum();
            eprintln!(
                "{} {}: {} streets, {} communities, {} cells, {:.3} km²",
                grid.district_code,
                grid.district_name,
                grid.streets.len(),
                grid.communities.len(),
                grid.cells.len(),
                area / 1e6
            );
            Ok(())
        }
    }
}
