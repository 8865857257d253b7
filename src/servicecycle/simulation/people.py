"""The simulated customers and their companies. Pure.

Who writes in is Zipf-like (Zipf-Mandelbrot): the customer of rank r is picked with weight
1 / (r + N/50) ** repeat, so a few come back many times and most write once or twice. A
customer exists in the plan from their first ticket.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

from servicecycle.simulation.plan import PlanCompany, PlanCustomer
from servicecycle.simulation.scenario import Scenario

FIRST = [
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Ivy",
    "Lily",
    "Isabella",
    "Rosie",
    "Sophia",
    "Grace",
    "Freya",
    "Emily",
    "Ella",
    "Poppy",
    "Aisha",
    "Chloe",
    "Hannah",
    "Zara",
    "Maya",
    "Noah",
    "Oliver",
    "George",
    "Leo",
    "Arthur",
    "Muhammad",
    "Harry",
    "Oscar",
    "Jack",
    "Charlie",
    "Jacob",
    "Thomas",
    "Henry",
    "Lucas",
    "William",
    "Isaac",
    "Theo",
    "Alfie",
    "Joshua",
    "James",
    "Samuel",
    "Daniel",
    "Priya",
    "Ravi",
    "Wei",
    "Mei",
    "Kenji",
    "Yuki",
    "Sofia",
    "Mateo",
    "Diego",
    "Lars",
    "Ingrid",
    "Fatima",
    "Omar",
    "Kwame",
    "Ama",
    "Tunde",
    "Chiara",
    "Luca",
    "Anna",
    "Jan",
    "Piotr",
    "Agnieszka",
    "Siobhan",
    "Ciaran",
    "Eilidh",
    "Rhys",
    "Cerys",
]
LAST = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Wright",
    "Robinson",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Khan",
    "Ahmed",
    "Ali",
    "Singh",
    "Murphy",
    "Kelly",
    "O'Brien",
    "Campbell",
    "Stewart",
    "Macdonald",
    "Hughes",
    "Edwards",
    "Lewis",
    "Morgan",
    "Price",
    "Chen",
    "Wang",
    "Li",
    "Kim",
    "Nakamura",
    "Garcia",
    "Rossi",
    "Novak",
    "Kowalski",
    "Hansen",
    "Larsen",
    "Okafor",
    "Mensah",
    "Adeyemi",
    "Silva",
    "Costa",
    "Müller",
    "Dubois",
    "Jansen",
    "Andersson",
]
_COMPANY_A = [
    "Bright",
    "Lane",
    "North",
    "Hill",
    "Harbour",
    "Copper",
    "Willow",
    "Blue",
    "Stone",
    "Red",
    "Kite",
    "Oak",
    "Tree",
    "Riverside",
    "Summit",
    "Lantern",
    "Meadow",
    "Foxglove",
    "Granite",
    "Harvest",
    "Beacon",
    "Kestrel",
    "Orchard",
    "Thistle",
]
_COMPANY_B = ("Studio", "Interiors", "Hotels", "Cafés", "Design", "Lettings", "Offices", "Homes")
_MAIL = ("example.com", "example.net", "example.org", "mail.example", "post.example")


@dataclass(frozen=True)
class Person:
    key: str
    name: str
    tier: str


def _slug(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


class Crowd:
    """Picks the customer of each ticket and remembers the ones that wrote in."""

    def __init__(self, rng: random.Random, scenario: Scenario) -> None:
        c = scenario.customers
        self.rng = rng
        self.company_share = c.company_share
        offset = c.count / 50
        self.weights = list(accumulate((r + offset) ** -c.repeat for r in range(1, c.count + 1)))
        self.tiers = list(c.tiers)
        self.tier_weights = list(accumulate(c.tiers.values()))
        self.companies: list[PlanCompany] = []
        names: set[str] = set()
        while len(self.companies) < c.companies:
            first, second = rng.sample(_COMPANY_A, 2)
            name = f"{first} {second} {rng.choice(_COMPANY_B)}"
            if name in names:
                name = f"{name} {len(self.companies) + 1}"
            names.add(name)
            key = f"co{len(self.companies) + 1:05d}"
            self.companies.append(PlanCompany(key, name, f"{_slug(name)}.example"))
        self.used_companies: dict[str, PlanCompany] = {}
        self.people: dict[int, Person] = {}
        self.customers: list[PlanCustomer] = []
        self.emails: set[str] = set()

    def pick(self) -> Person:
        """The customer of the next ticket (a new one is made on their first ticket)."""
        rank = bisect_right(self.weights, self.rng.random() * self.weights[-1])
        rank = min(rank, len(self.weights) - 1)
        person = self.people.get(rank)
        if person is None:
            person = self._make(rank)
        return person

    def _make(self, rank: int) -> Person:
        rng = self.rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name = f"{first} {last}"
        company = None
        if self.companies and rng.random() < self.company_share:
            company = rng.choice(self.companies)
            self.used_companies[company.key] = company
            domain = company.domain
        else:
            domain = rng.choice(_MAIL)
        local = f"{_slug(first)}.{_slug(last)}"
        email = f"{local}@{domain}"
        n = 1
        while email in self.emails:
            n += 1
            email = f"{local}{n}@{domain}"
        self.emails.add(email)
        index = bisect_right(self.tier_weights, rng.random() * self.tier_weights[-1])
        tier = self.tiers[min(index, len(self.tiers) - 1)]
        key = f"c{rank + 1:06d}"
        self.customers.append(
            PlanCustomer(key, name, email, tier, company.key if company else None)
        )
        person = Person(key, name, tier)
        self.people[rank] = person
        return person

    def plan_customers(self) -> tuple[PlanCustomer, ...]:
        return tuple(self.customers)

    def plan_companies(self) -> tuple[PlanCompany, ...]:
        return tuple(sorted(self.used_companies.values(), key=lambda c: c.key))
