-- 调度计划 history and locks: which plan a re-plan replaced, and the
-- planner's locks (a pickup pinned to a vehicle) each plan was made with,
-- so the next re-plan can keep them.
--
-- A re-plan records the plan it replaced in `replan_of`; the plan that
-- replaced plan P is the one whose `replan_of` is P. One column rather than
-- a `replan_of` / `replaced_by` pair keeps one fact in one row, and the
-- unique index makes "replaced at most once" a rule of the database: when
-- two planners re-plan the same plan at once, the second insert fails
-- instead of forking the history (NULLs, plans made afresh, never collide).
ALTER TABLE logistics_plans ADD COLUMN replan_of INTEGER REFERENCES logistics_plans (id);
CREATE UNIQUE INDEX logistics_plans_replan_of ON logistics_plans (replan_of);

CREATE TABLE logistics_plan_locks (
    plan_id INTEGER NOT NULL REFERENCES logistics_plans (id),
    shipment_id INTEGER NOT NULL REFERENCES logistics_shipments (id),
    vehicle_id INTEGER NOT NULL REFERENCES logistics_vehicles (id),
    PRIMARY KEY (plan_id, shipment_id)
);
