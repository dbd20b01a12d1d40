"""Pipeline stages, each a function ``run(context) -> summary dict`` writing into its run sub-folder."""
