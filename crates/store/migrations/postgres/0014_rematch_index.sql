-- The SBOMs an advisory import affects are found from the package index by key alone: with
-- the SBOM id in the index, the lookup never reads the packages table itself.
DROP INDEX sbom_packages_by_match;
CREATE INDEX sbom_packages_by_match ON sbom_packages (match_ecosystem, match_name, sbom_id);
