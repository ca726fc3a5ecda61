// The federation test subgraphs — accounts, inventory, products, reviews (the public GraphQL
// gateways benchmark's, with the fixture directives added), critics (reviews of the demo
// catalog's gRPC books), and library, ratings and shops (interfaces, unions and an
// @interfaceObject across subgraphs) — served by Apollo's own
// subgraph library from the SDL files in tests/fixtures/federation, each on its own loopback
// port (subscriptions over graphql-transport-ws at /graphql). Usage: node subgraphs.mjs FIXTURE_DIR
// Prints one JSON line {"accounts": PORT, ...} once every subgraph listens. Each subgraph also
// answers `GET /log` with the requests it received (query and variables, in order) and
// `DELETE /log` empties it, so tests can see how the gateway fetched; `PUT /delay?ms=N` makes
// it answer N ms late (0: at once).
import { createServer } from "node:http";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, graphql, execute, subscribe } from "graphql";
import { buildSubgraphSchema } from "@apollo/subgraph";
import { WebSocketServer } from "ws";
import { useServer } from "graphql-ws/lib/use/ws";

const dir = process.argv[2];

const users = [
  { id: "1", name: "Ada Lovelace", username: "@ada", birthday: 1815 },
  { id: "2", name: "Alan Turing", username: "@complete", birthday: 1912 },
];
const products = [
  { upc: "1", sku: "TBL", variant: { id: "oak" }, name: "Table", price: 899, weight: 100, internalCode: "T-1" },
  { upc: "2", sku: "CCH", variant: { id: "red" }, name: "Couch", price: 1299, weight: 1000, internalCode: "C-2" },
  { upc: "3", sku: "CHR", variant: { id: "ash" }, name: "Chair", price: 54, weight: 50, internalCode: "C-3" },
];
const inventory = [
  { upc: "1", inStock: true },
  { upc: "2", inStock: false },
  { upc: "3", inStock: true },
];
const reviews = [
  { id: "1", authorID: "1", upc: "1", body: "Love it!" },
  { id: "2", authorID: "1", upc: "2", body: "Too expensive." },
  { id: "3", authorID: "2", upc: "3", body: "Could be better." },
  { id: "4", authorID: "2", upc: "1", body: "Prefer something else." },
];
// The critics subgraph reviews the demo catalog's books (a gRPC service), known by name.
const critiques = [
  { id: "c1", book: "shelves/1/books/1", body: "A landmark.", stars: 5, critic: "Richard Dawkins" },
  { id: "c2", book: "shelves/1/books/2", body: "Quietly wise.", stars: 4, critic: "Ursula K. Le Guin" },
  { id: "c3", book: "shelves/1/books/1", body: "Slow going.", stars: 3, critic: "Richard Dawkins" },
];
// The library's media (an interface entity, Book and Film) and people; ratings knows media
// only as the interface (@interfaceObject); shops sells some of them beside its gadgets.
const media = [
  { __typename: "Book", id: "b1", title: "Dune", pages: 412 },
  { __typename: "Film", id: "f1", title: "Alien", minutes: 117 },
  { __typename: "Book", id: "b2", title: "Emma", pages: 474 },
];
const people = [{ __typename: "Person", id: "p1", name: "Ursula K. Le Guin" }];
const stars = { b1: 4.5, f1: 5, b2: 3.5 };
const prices = { b1: 9.99, b2: 5.5 };
const streams = { f1: ["cinema", "tv"], b1: [], b2: [] };
const gadgets = [{ __typename: "Gadget", sku: "g1", price: 20 }];
// The reviews subgraph's own copy of what it provides, shares or took over.
const authorOf = (id) => {
  const user = users.find((u) => u.id === id);
  return user && { id: user.id, username: user.username, name: user.name };
};

const resolvers = {
  accounts: {
    Query: {
      me: () => users[0],
      users: () => users,
      user: (_, { id }) => users.find((u) => u.id === id),
    },
    User: {
      __resolveReference: (ref) => users.find((u) => u.id === ref.id),
      // Referenced by its compound key only (products resolves it).
      favoriteProduct: (user) => (user.id === "1" ? { sku: "CCH", variant: { id: "red" } } : null),
    },
  },
  inventory: {
    Product: {
      __resolveReference: (ref) => ({ ...ref, ...inventory.find((i) => i.upc === ref.upc) }),
      shippingEstimate: (product) => {
        if (product.price === undefined || product.weight === undefined) {
          throw new Error("shippingEstimate needs price and weight in the representation");
        }
        return product.price > 1000 ? 0 : Math.round(product.weight * 0.5);
      },
      lastCheckedBy: () => ({ id: "2" }),
    },
  },
  products: {
    Query: {
      topProducts: (_, { first }) => products.slice(0, first),
    },
    Product: {
      __resolveReference: (ref) =>
        ref.upc !== undefined
          ? products.find((p) => p.upc === ref.upc)
          : products.find((p) => p.sku === ref.sku && p.variant.id === ref.variant?.id),
    },
  },
  critics: {
    Query: {
      latestReviews: () => critiques,
    },
    Subscription: {
      reviewAdded: {
        subscribe: async function* () {
          for (const critique of critiques) yield { reviewAdded: critique };
        },
      },
    },
    Review: {
      __resolveReference: (ref) => critiques.find((c) => c.id === ref.id),
      book: (review) => ({ name: review.book }),
      critic: (review) => ({ name: review.critic }),
    },
    Author: {
      __resolveReference: (ref) => ({ name: ref.name }),
      critiques: (author) => critiques.filter((c) => c.critic === author.name),
    },
    Book: {
      __resolveReference: (ref) => ({ name: ref.name }),
      reviews: (book) => critiques.filter((c) => c.book === book.name),
      averageStars: (book) => {
        // A book the critics refuse to rate: an entity field error, for the error-path tests.
        if (book.name === "shelves/2/books/1") throw new Error(`no stars for ${book.name}`);
        const mine = critiques.filter((c) => c.book === book.name);
        return mine.length ? mine.reduce((sum, c) => sum + c.stars, 0) / mine.length : null;
      },
    },
  },
  reviews: {
    Review: {
      __resolveReference: (ref) => reviews.find((r) => r.id === ref.id),
      author: (review) => authorOf(review.authorID),
      product: (review) => ({ upc: review.upc }),
    },
    User: {
      __resolveReference: (ref) => {
        const user = users.find((u) => u.id === ref.id);
        return user && { id: user.id, name: user.name };
      },
      birthday: (user) => users.find((u) => u.id === user.id)?.birthday,
      reviews: (user) => reviews.filter((r) => r.authorID === user.id),
    },
    Product: {
      reviews: (product) => reviews.filter((r) => r.upc === product.upc),
    },
  },
};

resolvers.library = {
  Query: {
    media: () => media,
    item: (_, { id }) => media.find((m) => m.id === id),
    search: (_, { text }) => [...media, ...people].filter((m) => (m.title ?? m.name).includes(text)),
  },
  Media: {
    __resolveType: (m) => m.__typename,
    __resolveReference: (ref) => media.find((m) => m.id === ref.id),
  },
  Book: { __resolveReference: (ref) => media.find((m) => m.id === ref.id) },
  Film: { __resolveReference: (ref) => media.find((m) => m.id === ref.id) },
  Person: { __resolveReference: (ref) => people.find((p) => p.id === ref.id) },
  SearchResult: { __resolveType: (m) => m.__typename },
};
resolvers.ratings = {
  Query: { topRated: () => ["f1", "b1"].map((id) => ({ id })) },
  Media: {
    __resolveReference: (ref) => ({ id: ref.id }),
    stars: (m) => stars[m.id],
  },
};
resolvers.shops = {
  Query: { bestsellers: () => [{ __typename: "Book", id: "b2" }, gadgets[0]] },
  Book: { __resolveReference: (ref) => ({ id: ref.id }), price: (b) => prices[b.id] },
  Film: { __resolveReference: (ref) => ({ id: ref.id }), streams: (f) => streams[f.id] },
  Gadget: { __resolveReference: (ref) => gadgets.find((g) => g.sku === ref.sku) },
  Product: { __resolveType: (p) => p.__typename },
};

// tests/fixtures/federation/requires: cost needs weight, which needs size (each computed from
// what the representation carries, so a missing requirement shows).
resolvers.root = {
  Query: { item: () => ({ id: "i1" }) },
  Item: { __resolveReference: (ref) => ({ id: ref.id }) },
};
resolvers.sizes = { Item: { __resolveReference: (ref) => ({ id: ref.id, size: 3 }) } };
resolvers.weights = {
  Item: { __resolveReference: (ref) => ({ id: ref.id, weight: ref.size === undefined ? null : ref.size * 10 }) },
};
resolvers.costs = {
  Item: { __resolveReference: (ref) => ({ id: ref.id, cost: ref.weight === undefined ? null : ref.weight * 2 }) },
};

function serve(name) {
  const typeDefs = parse(readFileSync(join(dir, `${name}.graphql`), "utf8"));
  const schema = buildSubgraphSchema([{ typeDefs, resolvers: resolvers[name] }]);
  const log = [];
  let delay = 0;
  const server = createServer((req, res) => {
    if (req.url.startsWith("/delay?ms=")) {
      delay = Number(req.url.slice("/delay?ms=".length)) || 0;
      res.writeHead(204);
      res.end();
      return;
    }
    if (req.url === "/log") {
      if (req.method === "DELETE") log.length = 0;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(log));
      return;
    }
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", async () => {
      let request;
      try {
        request = JSON.parse(body);
      } catch {
        res.writeHead(400, { "content-type": "application/json" });
        res.end(JSON.stringify({ errors: [{ message: "the body is not JSON" }] }));
        return;
      }
      log.push({ query: request.query, variables: request.variables ?? {}, headers: req.headers });
      if (delay > 0) await new Promise((wake) => setTimeout(wake, delay));
      const result = await graphql({
        schema,
        source: request.query,
        variableValues: request.variables,
        operationName: request.operationName,
      });
      res.writeHead(200, { "content-type": "application/graphql-response+json" });
      res.end(JSON.stringify(result));
    });
  });
  // Subscriptions over graphql-transport-ws on the same port.
  useServer({ schema, execute, subscribe }, new WebSocketServer({ server, path: "/graphql" }));
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve([name, server.address().port])));
}

// Every subgraph with resolvers here whose SDL is in the directory.
const names = Object.keys(resolvers).filter((name) => existsSync(join(dir, `${name}.graphql`)));
const ports = await Promise.all(names.map(serve));
process.stdout.write(JSON.stringify(Object.fromEntries(ports)) + "\n");
// Ends with the test that started it.
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
