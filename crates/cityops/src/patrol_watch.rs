//! The patrol watch: each key project behind its required visits gets one `patrol.behind` event on the
//! bus a day (the shift lead sends someone before the day ends). Behind means, with the daily check,
//! fewer visits than required once a set local time has passed; with the pro-rata check, fewer visits
//! so far than the required ones in proportion to the elapsed share of the patrol day (a project of
//! four visits over 08:00-20:00 owes one by 11:00), so a neglected project shows up in the morning.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use cityops_bus::Bus;
use cityops_core::EventData;
use cityops_core::event::PatrolBehind;
use cityops_core::sla::WorkCalendar;
use cityops_gis::Geofence;
use cityops_gis::coverage::{TimeWindow, behind_pro_rata, behind_schedule, fence_visits};
use cityops_gis::geofence::FenceTrackerConfig;
use cityops_store::Store;
use tokio::sync::watch;

/// When key projects count as behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatrolSchedule {
    /// After this local time, short of the day's required visits.
    Daily { after: NaiveTime },
    /// Between `start` and `end` local time, short of the required visits times the elapsed share of
    /// that window (rounded down); from `end` on, short of all of them.
    ProRata { start: NaiveTime, end: NaiveTime },
}

impl PatrolSchedule {
    /// The share of the required visits due at local time `time`; `None` before anything is due.
    fn due_share(self, time: NaiveTime) -> Option<f64> {
        match self {
            PatrolSchedule::Daily { after } => (time >= after).then_some(1.0),
            PatrolSchedule::ProRata { start, end } => {
                if time <= start {
                    return None;
                }
                let elapsed = (time - start).num_milliseconds() as f64;
                let length = (end - start).num_milliseconds() as f64;
                Some((elapsed / length).min(1.0))
            }
        }
    }
}

/// Checks today's key-project visits against `schedule` at `now`, publishing each project that is
/// behind once per day. Returns how many events it published.
pub async fn check(
    store: &Store,
    bus: &Bus,
    fences: &[Geofence],
    calendar: &WorkCalendar,
    schedule: PatrolSchedule,
    now: DateTime<Utc>,
    warned: &mut HashSet<(NaiveDate, String)>,
) -> anyhow::Result<usize> {
    let offset = calendar.utc_offset();
    let local = now.with_timezone(&offset);
    let Some(share) = schedule.due_share(local.time()) else {
        return Ok(0);
    };
    if !fences
        .iter()
        .any(|f| matches!(f.kind, cityops_gis::FenceKind::KeyProject { .. }))
    {
        return Ok(0);
    }
    let day = local.date_naive();
    let window = TimeWindow::local_day(day, offset);
    let fixes = cityops_ingest::inspectors::stored_fixes(store, window.start, window.end).await?;
    let visits = fence_visits(&fixes, fences, &FenceTrackerConfig::default(), day, offset);
    let behind = match schedule {
        PatrolSchedule::Daily { .. } => behind_schedule(&visits)
            .into_iter()
            .map(|b| (b, None))
            .collect::<Vec<_>>(),
        PatrolSchedule::ProRata { .. } => behind_pro_rata(&visits, share)
            .into_iter()
            .map(|(b, due)| (b, Some(due)))
            .collect(),
    };
    let mut published = 0;
    for (behind, due) in behind {
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
                due,
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
    schedule: PatrolSchedule,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut warned = HashSet::new();
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = check(&store, &bus, &fences(), &calendar, schedule, Utc::now(), &mut warned).await {
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
        let four_pm = PatrolSchedule::Daily {
            after: NaiveTime::from_hms_opt(16, 0, 0).unwrap(),
        };
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
        assert_eq!(behind.due, None, "the whole day's visits are due");
    }

    fn beijing(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[tokio::test]
    async fn pro_rata_a_key_project_is_behind_when_short_of_the_elapsed_share() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let bus = Bus::new(BusConfig::default());
        let mut sub = bus.subscribe(Filter::types(["patrol.behind"]).unwrap());
        // wfj-key: four visits a day.
        let fences = crate::settings::Settings::defaults()
            .gis
            .load_geofences()
            .unwrap();
        let calendar = cityops_core::sla::CalendarConfig::default()
            .build()
            .unwrap();
        let schedule = PatrolSchedule::ProRata {
            start: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
        };
        // One visit at 10:00: from outside into the zone, staying past the dwell.
        let ten = beijing("2026-11-28T10:00:00+08:00").timestamp_millis();
        let fixes: Vec<cityops_store::fixes::FixRow> = [
            (116.4150, 39.9130, ten - 60_000),
            (116.4110, 39.9130, ten),
            (116.4112, 39.9131, ten + 120_000),
        ]
        .into_iter()
        .map(|(lon, lat, time)| cityops_store::fixes::FixRow {
            inspector: "i1".into(),
            time,
            lon,
            lat,
            accuracy: Some(5.0),
        })
        .collect();
        store.append_fixes(&fixes).await.unwrap();
        let mut warned = HashSet::new();
        // The check at a Beijing time.
        macro_rules! at {
            ($time:expr) => {
                check(
                    &store,
                    &bus,
                    &fences,
                    &calendar,
                    schedule,
                    beijing($time),
                    &mut warned,
                )
                .await
                .unwrap()
            };
        }
        // 07:00 is before the patrol day; at 09:00 a twelfth of four visits is none yet.
        assert_eq!(at!("2026-11-28T07:00:00+08:00"), 0);
        assert_eq!(at!("2026-11-28T09:00:00+08:00"), 0);
        // 11:00: one due, one made.
        assert_eq!(at!("2026-11-28T11:00:00+08:00"), 0);
        // 14:00: two due, one made.
        assert_eq!(at!("2026-11-28T14:00:00+08:00"), 1);
        // Once a day, even further behind.
        assert_eq!(at!("2026-11-28T19:30:00+08:00"), 0);
        // The next day starts over: one due by 11:00, none made.
        assert_eq!(at!("2026-11-29T10:00:00+08:00"), 0);
        assert_eq!(at!("2026-11-29T11:00:00+08:00"), 1);
        let mut seen = Vec::new();
        for _ in 0..2 {
            let Recv::Event(event) = sub.recv().await else {
                panic!("no event")
            };
            let EventData::PatrolBehind(behind) = &event.event.data else {
                panic!("{:?}", event.event)
            };
            seen.push((
                behind.day.clone(),
                behind.fence.clone(),
                behind.visits,
                behind.due,
                behind.required,
            ));
        }
        assert_eq!(
            seen,
            [
                ("2026-11-28".into(), "wfj-key".into(), 1, Some(2), 4),
                ("2026-11-29".into(), "wfj-key".into(), 0, Some(1), 4),
            ]
        );
    }

    #[test]
    fn the_share_due_follows_the_schedule() {
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let daily = PatrolSchedule::Daily { after: t(16, 0) };
        assert_eq!(daily.due_share(t(15, 59)), None);
        assert_eq!(daily.due_share(t(16, 0)), Some(1.0));
        let pro_rata = PatrolSchedule::ProRata {
            start: t(8, 0),
            end: t(20, 0),
        };
        assert_eq!(pro_rata.due_share(t(8, 0)), None);
        assert_eq!(pro_rata.due_share(t(11, 0)), Some(0.25));
        assert_eq!(pro_rata.due_share(t(20, 0)), Some(1.0));
        assert_eq!(pro_rata.due_share(t(23, 0)), Some(1.0));
    }

    #[tokio::test]
    async fn the_running_watch_sees_fences_drawn_through_the_api() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let bus = Bus::new(BusConfig::default());
        let mut sub = bus.subscribe(Filter::types(["patrol.behind"]).unwrap());
        let drawn = serde_json::json!({
            "type": "Feature",
            "properties": {"name": "金宝街重点保障区", "kind": "key_project", "required_visits_per_day": 2},
            "geometry": {"type": "Polygon", "coordinates": [[
                [116.422, 39.914], [116.426, 39.914], [116.426, 39.917], [116.422, 39.917], [116.422, 39.914]
            ]]},
        });
        let fence = cityops_gis::geofence::read_geofence_feature(&drawn, "new").unwrap();
        let id = store
            .insert_geofence(
                None,
                &cityops_store::geofences::GeofenceWrite {
                    name: fence.name.clone(),
                    kind: "key_project".into(),
                    required_visits_per_day: Some(2),
                    min_dwell_ms: None,
                    feature: drawn.to_string(),
                    at: 0,
                    by: "lead".into(),
                },
            )
            .await
            .unwrap()
            .unwrap();
        let tracker = std::sync::Arc::new(cityops_ingest::inspectors::InspectorTracker::new(
            60_000,
            bus.clone(),
        ));
        let book = cityops_api::geofences::GeofenceBook::load(&store, Vec::new(), tracker)
            .await
            .unwrap();
        let calendar = std::sync::Arc::new(
            cityops_core::sla::CalendarConfig::default()
                .build()
                .unwrap(),
        );
        let (stop, stop_rx) = watch::channel(false);
        let watch = tokio::spawn(run(
            store.clone(),
            bus.clone(),
            move || book.all(),
            calendar,
            PatrolSchedule::Daily {
                after: NaiveTime::MIN,
            },
            Duration::from_millis(10),
            stop_rx,
        ));
        let event = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .expect("a patrol.behind event");
        let Recv::Event(event) = event else {
            panic!("no event")
        };
        let EventData::PatrolBehind(behind) = &event.event.data else {
            panic!("{:?}", event.event)
        };
        assert_eq!(
            (behind.fence.as_str(), behind.name.as_str(), behind.required),
            (id.as_str(), "金宝街重点保障区", 2)
        );
        stop.send_replace(true);
        watch.await.unwrap();
    }
}
