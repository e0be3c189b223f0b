"""`stembridge relink PROJECT FOLDER`: point a project whose stems moved at the folder they are in now.

Each missing stem's file (and a missing tempo-map MIDI file) is looked for in FOLDER and its
sub-folders: by the content the last analysis recorded (so a renamed file is found), else by name
when its length matches (:mod:`bridge.project.relink`); what is found is saved into the project,
nothing else changes. ``--dry-run`` only says what it would do. Exit status 0 when no file is missing
afterwards, 1 when some still are (so a script can tell), 2 on a user error.
"""

from __future__ import annotations

import argparse


def cmd_relink(args: argparse.Namespace) -> int:
    from bridge.project import load_project, save_project
    from bridge.project.relink import apply_relink, describe_relink, missing_files, plan_relink

    project, project_dir = load_project(args.project_dir)
    if not missing_files(project, project_dir):
        print("every file the project uses is where it says; nothing to relink")
        return 0
    plan = plan_relink(project, project_dir, args.folder)
    for line in describe_relink(plan):
        print(f"  {line}")
    if plan.found and not args.dry_run:
        save_project(apply_relink(project, project_dir, plan.found), project_dir)
        print(f"saved: {len(plan.found)} file{'s' if len(plan.found) > 1 else ''} relinked in {project_dir}")
    elif plan.found:
        print("(dry run: nothing saved)")
    return 0 if plan.complete else 1


def add_relink_parser(sub) -> None:
    r = sub.add_parser("relink", help="find a project's moved stems in a folder and point the project at them")
    r.add_argument("project_dir", metavar="PROJECT_DIR")
    r.add_argument("folder", metavar="FOLDER", help="where the stems are now (searched with its sub-folders)")
    r.add_argument("--dry-run", action="store_true", help="say what would change, save nothing")
    r.set_defaults(func=cmd_relink)
