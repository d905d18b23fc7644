//! The patrol watch: after a set local time each day, every key project visited fewer times than it
//! requires gets one `patrol.behind` event on the bus (the shift lead sends someone before the day ends).

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use cityops_bus::Bus;
use cityops_core::EventData;
use cityops_core::event::PatrolBehind;
use cityops_core::sla::WorkCalendar;
use cityops_gis::Geofence;
use cityops_gis::coverage::{TimeWindow, behind_schedule, fence_visits};
use cityops_gis::geofence::FenceTrackerConfig;
use cityops_store::Store;
use tokio::sync::watch;

/// Checks today's key-project visits once the local time is past `check_after`, publishing each
/// project that is behind once per day. Returns how many events it published.
pub async fn check(
    store: &Store,
    bus: &Bus,
    fences: &[Geofence],
    calendar: &WorkCalendar,
    check_after: NaiveTime,
    now: DateTime<Utc>,
    warned: &mut HashSet<(NaiveDate, String)>,
) -> anyhow::Result<usize> {
    let offset = calendar.utc_offset();
    let local = now.with_timezone(&offset);
    if local.time() < check_after
        || !fences
            .iter()
            .any(|f| matches!(f.kind, cityops_gis::FenceKind::KeyProject { .. }))
    {
        return Ok(0);
    }
    let day = local.date_naive();
    let window = TimeWindow::local_day(day, offset);
    let fixes = cityops_ingest::inspectors::stored_fixes(store, window.start, window.end).await?;
    let visits = fence_visits(&fixes, fences, &FenceTrackerConfig::default(), day, offset);
    let mut published = 0;
    for behind in behind_schedule(&visits) {
        if warned.insert((day, behind.fence.clone())) {
            let name = fences
                .iter()
                .find(|f| f.id == behind.fence)
                .map(|f| f.name.clone())
                .unwrap_or_default();
            bus.publish(EventData::PatrolBehind(PatrolBehind {
                fence: behind.fence,
                name,
                day: day.to_string(),
                visits: behind.visits,
                required: behind.required,
            }));
            published += 1;
        }
    }
    Ok(published)
}

/// Runs [`check`] every `interval` until shutdown, against the fences `fences` gives at each check (the
/// configured ones and those drawn through the API).
pub async fn run(
    store: Store,
    bus: Bus,
    fences: impl Fn() -> Vec<Geofence> + Send + Sync + 'static,
    calendar: std::sync::Arc<WorkCalendar>,
    check_after: NaiveTime,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut warned = HashSet::new();
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = check(&store, &bus, &fences(), &calendar, check_after, Utc::now(), &mut warned).await {
                    tracing::warn!(error = format!("{e:#}"), "patrol watch could not check the key projects");
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cityops_bus::{BusConfig, Filter, Recv};

    #[tokio::test]
    async fn a_key_project_behind_is_reported_once_a_day_after_the_check_time() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let bus = Bus::new(BusConfig::default());
        let mut sub = bus.subscribe(Filter::types(["patrol.behind"]).unwrap());
        let fences = crate::settings::Settings::defaults()
            .gis
            .load_geofences()
            .unwrap();
        let calendar = cityops_core::sla::CalendarConfig::default()
            .build()
            .unwrap();
        let four_pm = NaiveTime::from_hms_opt(16, 0, 0).unwrap();
        let mut warned = HashSet::new();
        // 2026-11-28 15:00 and 17:00 in Beijing (+08:00).
        let before = DateTime::parse_from_rfc3339("2026-11-28T15:00:00+08:00")
            .unwrap()
            .with_timezone(&Utc);
        let after = DateTime::parse_from_rfc3339("2026-11-28T17:00:00+08:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            check(
                &store,
                &bus,
                &fences,
                &calendar,
                four_pm,
                before,
                &mut warned
            )
            .await
            .unwrap(),
            0
        );
        assert_eq!(
            check(
                &store,
                &bus,
                &fences,
                &calendar,
                four_pm,
                after,
                &mut warned
            )
            .await
            .unwrap(),
            1,
            "wfj-key: 0 of 4"
        );
        assert_eq!(
            check(
                &store,
                &bus,
                &fences,
                &calendar,
                four_pm,
                after,
                &mut warned
            )
            .await
            .unwrap(),
            0,
            "once a day"
        );
        let Recv::Event(event) = sub.recv().await else {
            panic!("no event")
        };
        let EventData::PatrolBehind(behind) = &event.event.data else {
            panic!("{:?}", event.event)
        };
        assert_eq!(
            (behind.fence.as_str(), behind.visits, behind.required),
            ("wfj-key", 0, 4)
        );
        assert_eq!(behind.day, "2026-11-28");
        assert_eq!(behind.name, "王府井步行街重点保障区");
    }
}
