/**
 * True only when A and B are the same type. Where a domain module (outside src/api and src/wire)
 * declares the shape it returns for the wire, its plugin states `const _x: SameType<Domain, Wire> = true`,
 * so that the declaration and the schema cannot drift apart: any difference fails the build.
 */
export type SameType<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
