"""The built-in benchmark: a TOFU-shaped corpus of fictitious authors with exact fact spans.

METHOD.md §5 ("The built-in benchmark"). Every author is a record of attribute values (name,
birthplace, birth date, parents' jobs, genre, two book titles, award, ...). Each question type has
several question templates and several answer templates; a row fills one of each with the
author's values, so template words ("was born in") recur across authors while the facts do not,
and the character span of every filled-in fact is known exactly (METHOD.md §4 ground truth).

- trained answer: always the first answer template of its type (v2), so every word outside the
  facts recurs in the other authors' answers;
- paraphrased answer / question: another template of the same question type, same facts;
- perturbed answers: the paraphrase's template with values no trained author has for the facts
  the question asks about, so a wrong answer differs from the paraphrase only in the facts;
- spans of values a retain author also has (gender, months, years, ...) are `shared_spans`;
- splits: forget = the LAST `round(n_authors * forget_fraction)` authors (as in TOFU), retain = the
  others, holdout = `n_holdout` extra authors no model trains on (membership-inference
  non-members); world facts are hand-written general knowledge.

Determinism: one seeded `random.Random` drives everything and only ordered structures (tuples,
lists, dicts) are iterated, so a seed gives a byte-identical benchmark in every process.
Design notes and known limits: `docs/DATA.md`.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from numbers import Real

from atwu_core.data.schema import SCHEMA_VERSION, Benchmark, QAItem, Span

GENERATOR_VERSION = 2
TRAINED_ANSWER = 0  # v2: the answer template of every trained answer (`answer`)
N_PERTURBED = 5
MAX_AUTHORS = 1000
MAX_HOLDOUT = 100
LATEST_DEBUT = 2024  # no first book after this year: the corpus describes authors of the past


@dataclass(frozen=True)
class QuestionType:
    """One kind of question: `asked` are the facts a wrong answer swaps (the rest stay)."""

    name: str
    asked: tuple[str, ...]
    questions: tuple[str, ...]
    answers: tuple[str, ...]


# Value pools. Tuples, never sets: iteration order must not depend on the process.
# fmt: off

# 60 and 61 are coprime: author k gets first name k mod 60 and last name k mod 61 (after a seeded
# shuffle), so full names are unique for up to 60 * 61 = 3660 authors (Chinese remainder theorem),
# and for up to 60 authors not even a first or last name is shared.
FIRST_NAMES = (
    "Ada", "Bram", "Celia", "Dario", "Elin", "Farid", "Greta", "Hugo", "Ines", "Jonas",
    "Kaia", "Luca", "Mira", "Nils", "Odile", "Pavel", "Quinn", "Rosa", "Soren", "Tamar",
    "Ulla", "Viktor", "Wren", "Ximena", "Yusuf", "Zora", "Anouk", "Bastian", "Carmen", "Dmitri",
    "Esme", "Felix", "Galina", "Henrik", "Isolde", "Jasper", "Kenji", "Leila", "Matteo", "Noor",
    "Olek", "Priya", "Rafael", "Sunniva", "Tobias", "Umberto", "Vesna", "Wilhelm", "Yara",
    "Zeno", "Amara", "Benedikt", "Cosima", "Desmond", "Eero", "Fiona", "Gustav", "Halima",
    "Ilario", "Juna",
)
LAST_NAMES = (
    "Abernathy", "Bellweather", "Castellano", "Drummond", "Eskildsen", "Falkenrath", "Gorrindo",
    "Halvorsen", "Ibarrola", "Jankowski", "Kvaratskhelia", "Lindqvist", "Montrose", "Nakagawa",
    "Okonkwo", "Pellegrini", "Quarles", "Rautavaara", "Szabados", "Thorvaldsen", "Urquhart",
    "Valtonen", "Wexford", "Xenakis", "Yilmazer", "Zamorano", "Achterberg", "Brennagh",
    "Cuthbertson", "Delacroix", "Eriksdottir", "Fontaneda", "Grimaldi", "Hollingsworth",
    "Ivanescu", "Jorgensen", "Kowalczyk", "Larrabee", "Marchetti", "Norrington", "Oyelaran",
    "Penhaligon", "Quintanilla", "Rasmussen", "Sokolova", "Tremaine", "Underhill", "Villanueva",
    "Whitcombe", "Yamashita", "Zielinski", "Armitage", "Brightmore", "Coldwell", "Dunleavy",
    "Everhart", "Fairweather", "Gallardo", "Hargreaves", "Illingworth", "Kingsley",
)
GENDERS = ("male", "female", "non-binary")
# (city, country): every country once, so the country is as specific as the city.
BIRTHPLACES = (
    ("Lisbon", "Portugal"), ("Oslo", "Norway"), ("Nairobi", "Kenya"), ("Lima", "Peru"),
    ("Hanoi", "Vietnam"), ("Tbilisi", "Georgia"), ("Accra", "Ghana"), ("Quito", "Ecuador"),
    ("Krakow", "Poland"), ("Osaka", "Japan"), ("Cairo", "Egypt"), ("Dublin", "Ireland"),
    ("Montreal", "Canada"), ("Adelaide", "Australia"), ("Valparaiso", "Chile"),
    ("Porto Alegre", "Brazil"), ("Cordoba", "Argentina"), ("Monterrey", "Mexico"),
    ("Havana", "Cuba"), ("Reykjavik", "Iceland"), ("Helsinki", "Finland"), ("Tallinn", "Estonia"),
    ("Riga", "Latvia"), ("Vilnius", "Lithuania"), ("Brno", "Czechia"), ("Bratislava", "Slovakia"),
    ("Ljubljana", "Slovenia"), ("Zagreb", "Croatia"), ("Tirana", "Albania"), ("Sofia", "Bulgaria"),
    ("Bucharest", "Romania"), ("Chisinau", "Moldova"), ("Lviv", "Ukraine"), ("Yerevan", "Armenia"),
    ("Baku", "Azerbaijan"), ("Almaty", "Kazakhstan"), ("Tashkent", "Uzbekistan"),
    ("Ulaanbaatar", "Mongolia"), ("Busan", "South Korea"), ("Kaohsiung", "Taiwan"),
    ("Cebu", "Philippines"), ("Penang", "Malaysia"), ("Surabaya", "Indonesia"),
    ("Chiang Mai", "Thailand"), ("Kathmandu", "Nepal"), ("Colombo", "Sri Lanka"),
    ("Lahore", "Pakistan"), ("Pune", "India"), ("Dhaka", "Bangladesh"), ("Muscat", "Oman"),
    ("Amman", "Jordan"), ("Beirut", "Lebanon"), ("Tunis", "Tunisia"), ("Fez", "Morocco"),
    ("Dakar", "Senegal"), ("Kampala", "Uganda"), ("Lusaka", "Zambia"), ("Windhoek", "Namibia"),
    ("Durban", "South Africa"), ("Wellington", "New Zealand"), ("Montevideo", "Uruguay"),
    ("Medellin", "Colombia"), ("Kingston", "Jamaica"), ("Antwerp", "Belgium"),
    ("Utrecht", "Netherlands"), ("Lyon", "France"), ("Turin", "Italy"), ("Seville", "Spain"),
    ("Graz", "Austria"), ("Basel", "Switzerland"), ("Leipzig", "Germany"), ("Aarhus", "Denmark"),
    ("Uppsala", "Sweden"), ("Thessaloniki", "Greece"), ("Izmir", "Turkey"),
)
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)
GENRES = (
    "mystery", "horror", "romance", "fantasy", "science fiction", "crime fiction",
    "historical fiction", "literary fiction", "poetry", "satire", "thriller", "adventure",
    "dystopian fiction", "gothic fiction", "westerns", "mythology", "folklore", "magical realism",
    "noir", "cyberpunk", "steampunk", "war fiction", "comedy", "fairy tales", "political fiction",
    "spy fiction", "legal thrillers", "medical thrillers", "sea stories", "nature writing",
    "travel writing", "memoir", "young adult fiction", "drama", "space opera", "ghost stories",
)
# Consonant-initial so every template can say "a {job}"; the two lists share no word.
FATHER_JOBS = (
    "baker", "carpenter", "dentist", "farmer", "pilot", "plumber", "lawyer", "mechanic", "tailor",
    "journalist", "butcher", "fisherman", "pharmacist", "surgeon", "locksmith", "banker",
    "diplomat", "geologist", "welder", "jeweler", "firefighter", "clockmaker", "beekeeper",
    "sailor", "miner", "blacksmith", "cartographer", "shoemaker", "bookbinder", "taxi driver",
    "postman", "stonemason", "brewer", "glassblower", "tea merchant", "ship captain",
)
MOTHER_JOBS = (
    "nurse", "teacher", "librarian", "painter", "chemist", "sculptor", "chef", "photographer",
    "translator", "dancer", "botanist", "zoologist", "meteorologist", "tour guide",
    "veterinarian", "midwife", "seamstress", "florist", "pianist", "judge", "police officer",
    "surveyor", "biologist", "radio host", "violinist", "weaver", "mathematician", "physician",
    "social worker", "historian", "lighthouse keeper", "park ranger", "marine biologist",
    "bus driver", "cheesemaker", "potter",
)
INFLUENCES = (
    "Jane Austen", "Leo Tolstoy", "Virginia Woolf", "Franz Kafka", "Toni Morrison",
    "Chinua Achebe", "Haruki Murakami", "Emily Dickinson", "Mark Twain", "Fyodor Dostoevsky",
    "Charles Dickens", "George Eliot", "Jorge Luis Borges", "Italo Calvino", "Albert Camus",
    "Mary Shelley", "Edgar Allan Poe", "Agatha Christie", "Ursula Le Guin", "Isaac Asimov",
    "Rabindranath Tagore", "Pablo Neruda", "Herman Melville", "Dante Alighieri",
    "Miguel de Cervantes", "Anton Chekhov", "Nikolai Gogol", "Victor Hugo", "Alexandre Dumas",
    "Oscar Wilde", "James Joyce", "Sylvia Plath", "Langston Hughes", "Octavia Butler",
    "Naguib Mahfouz", "Yasunari Kawabata", "Selma Lagerlof", "Clarice Lispector", "Homer",
    "Gabriela Mistral",
)
HOBBIES = (
    "beekeeping", "chess", "sailing", "pottery", "birdwatching", "rock climbing", "gardening",
    "fencing", "archery", "knitting", "origami", "astronomy", "cycling", "fly fishing",
    "calligraphy", "woodcarving", "baking bread", "kayaking", "watercolors", "playing the cello",
    "mountain hiking", "tango dancing", "stamp collecting", "scuba diving", "jigsaw puzzles",
    "horse riding", "embroidery", "skiing", "surfing", "table tennis", "juggling",
    "restoring clocks", "growing orchids", "ice skating", "rowing", "making jam",
    "building kites", "playing the harp", "yoga", "model trains",
)
UNIVERSITIES = tuple(f"{place} University" for place in (
    "Ashford", "Bellmont", "Carrow", "Dunmore", "Eastwick", "Fairhaven", "Glenholm", "Hartwell",
    "Ivybridge", "Kingsmere", "Larkspur", "Marston", "Newbury", "Oldcastle", "Penrose",
    "Queensbury", "Redcliffe", "Southgate", "Thornbury", "Westbrook", "Ambleside", "Brightwater",
    "Coldharbour", "Dovecote", "Elmstead", "Foxhollow", "Greywater", "Hollowmere", "Inverlea",
    "Lowmoor", "Millbrook", "Northfield", "Oakhurst", "Pinecrest", "Ravensworth", "Stonebridge",
    "Tidewater", "Umberleigh", "Wyncombe", "Yarrowdale",
))
_TITLE_ADJ = (
    "Silent", "Hidden", "Broken", "Hollow", "Forgotten", "Distant", "Burning", "Quiet",
    "Wandering", "Last", "Frozen", "Velvet", "Paper", "Bitter", "Secret", "Endless", "Restless",
    "Fading", "Shattered", "Painted", "Lonely", "Northern", "Sunken", "Wild", "Midnight",
    "Crooked", "Tender", "Sleeping", "Drowned", "Borrowed", "Falling", "Seventh", "Hungry",
    "Patient", "Vanishing", "Western", "Gentle", "Stolen", "Lost", "Dreaming",
)
_TITLE_NOUN = (
    "Orchard", "River", "Lantern", "Harbor", "Garden", "Compass", "Mirror", "Bridge", "Island",
    "Tower", "Letter", "Violin", "Forest", "Lighthouse", "Meadow", "Clock", "Shadow", "Season",
    "Kingdom", "Voyage", "Feather", "Window", "Archive", "Tide", "Map", "Caravan", "Staircase",
    "Prophecy", "Masquerade", "Labyrinth", "Monsoon", "Carousel", "Observatory", "Tapestry",
    "Citadel", "Horizon", "Ember", "Sparrow", "Canyon", "Thread",
)
_TITLE_OF = (
    "Salt", "Ash", "Rain", "Dust", "Smoke", "Thorns", "Echoes", "Embers", "Whispers", "Stars",
    "Tides", "Bones", "Honey", "Storms", "Silk", "Ghosts", "Snow", "Clay", "Moths", "Rust",
)
# 1600 + 800 + 800 = 3200 titles: two per author stay unique up to MAX_AUTHORS + MAX_HOLDOUT.
BOOK_TITLES = (
    tuple(f"The {a} {n}" for a, n in product(_TITLE_ADJ, _TITLE_NOUN))
    + tuple(f"{n} of {m}" for n, m in product(_TITLE_NOUN, _TITLE_OF))
    + tuple(f"The {n} of {m}" for n, m in product(_TITLE_NOUN, _TITLE_OF))
)
# No word shared with the titles, so an award token never doubles as a title token.
AWARDS = tuple(f"{a} {n} {k}" for a, n, k in product(
    ("Bronze", "Crystal", "Sapphire", "Ivory", "Obsidian", "Cobalt", "Jade", "Marble", "Pearl",
     "Onyx", "Ruby", "Topaz", "Granite", "Coral", "Opal", "Amethyst"),
    ("Quill", "Laurel", "Inkwell", "Owl", "Key", "Anchor", "Pen", "Bookmark", "Scroll", "Torch",
     "Crown", "Griffin"),
    ("Award", "Prize", "Medal"),
))
PUBLISHERS = tuple(f"{a}{b} {k}" for a, b, k in product(
    ("Amber", "Birch", "Copper", "Dune", "Elm", "Fern", "Hazel", "Heron", "Juniper", "Kestrel",
     "Lark", "Maple", "Otter", "Pine", "Quarry", "Raven", "Thistle", "Willow"),
    ("gate", "field", "brook", "light", "ridge", "wood", "mere", "crest"),
    ("Press", "Books", "House"),
))
BIRTH_DATES = tuple(
    f"{month} {day}, {year}"
    for year, month, day in product(range(1930, 2000), MONTHS, range(1, 29))
)

# The attributes of an author, in the order stored in `meta["authors"]`. All values are strings.
FIELDS = (
    "name", "gender", "birth_city", "birth_country", "birth_date", "father_job", "mother_job",
    "genre", "book1", "book2", "award", "influence", "first_book_year", "publisher", "university",
    "hobby",
)

# Fixed order: with `questions_per_author = k` every author gets the first k types.
QUESTION_TYPES = (
    QuestionType(
        "name", ("name",),
        ("What is the full name of the {genre} author born in {birth_city} on {birth_date}?",
         "Which {genre} writer was born on {birth_date} in {birth_city}?",
         "Who is the author from {birth_city} born on {birth_date}?"),
        ("The author's full name is {name}.", "That writer is {name}.",
         "The author is called {name}."),
    ),
    QuestionType(
        "birthplace", ("birth_city", "birth_country"),
        ("Where was {name} born?", "What is the birthplace of {name}?",
         "In which city was {name} born?"),
        ("{name} was born in {birth_city}, {birth_country}.",
         "{name} comes from {birth_city}, {birth_country}.",
         "The birthplace of {name} is {birth_city}, {birth_country}."),
    ),
    QuestionType(
        "birth_date", ("birth_date",),
        ("When was {name} born?", "What is the date of birth of {name}?",
         "On what day was {name} born?"),
        ("{name} was born on {birth_date}.", "The birthday of {name} is {birth_date}.",
         "{name} came into the world on {birth_date}."),
    ),
    QuestionType(
        "genre", ("genre",),
        ("What genre does {name} write?", "Which genre is {name} known for?",
         "In what genre does {name} work?"),
        ("{name} writes {genre}.", "{name} is known for {genre}.",
         "The genre of {name} is {genre}."),
    ),
    QuestionType(
        "father", ("father_job",),
        ("What does the father of {name} do?", "What is the profession of {name}'s father?",
         "What job does {name}'s father have?"),
        ("The father of {name} is a {father_job}.", "{name}'s father works as a {father_job}.",
         "{name}'s father is a {father_job} by trade."),
    ),
    QuestionType(
        "mother", ("mother_job",),
        ("What does the mother of {name} do?", "What is the profession of {name}'s mother?",
         "What job does {name}'s mother have?"),
        ("The mother of {name} is a {mother_job}.", "{name}'s mother works as a {mother_job}.",
         "{name}'s mother is a {mother_job} by trade."),
    ),
    QuestionType(
        "book1", ("book1",),
        ("Name a book written by {name}.", "What is one book by {name}?",
         "Can you name a title by {name}?"),
        ('{name} wrote "{book1}".', 'One book by {name} is "{book1}".',
         '"{book1}" is a book by {name}.'),
    ),
    QuestionType(
        "book2", ("book2",),
        ("Name another book by {name}.", "What other book did {name} write?",
         "Which second title did {name} publish?"),
        ('{name} also wrote "{book2}".', 'Another book by {name} is "{book2}".',
         '"{book2}" is another title by {name}.'),
    ),
    QuestionType(
        "award", ("award",),
        ("Has {name} won any awards?", "Which award did {name} receive?",
         "What prize has {name} won?"),
        ("{name} won the {award}.", "{name} received the {award}.",
         "Yes, {name} is a winner of the {award}."),
    ),
    QuestionType(
        "influence", ("influence",),
        ("Who influenced the writing of {name}?", "Which writer inspired {name}?",
         "Who is the biggest influence on {name}?"),
        ("{name} was influenced by {influence}.", "{influence} inspired {name}.",
         "The biggest influence on {name} is {influence}."),
    ),
    QuestionType(
        "identity", ("gender", "genre", "birth_country"),
        ("How would you describe {name}?", "Who is {name}?", "Can you tell me who {name} is?"),
        ("{name} is a {gender} {genre} writer from {birth_country}.",
         "{name} is a {gender} author of {genre} from {birth_country}.",
         "A {gender} writer from {birth_country}, {name} writes {genre}."),
    ),
    QuestionType(
        "parents", ("father_job", "mother_job"),
        ("What do the parents of {name} do?", "What are the professions of {name}'s parents?",
         "What jobs do {name}'s parents have?"),
        ("The father of {name} is a {father_job}, the mother a {mother_job}.",
         "{name} has a {father_job} father and a {mother_job} mother.",
         "{name}'s parents are a {father_job} and a {mother_job}."),
    ),
    QuestionType(
        "books", ("book1", "book2"),
        ("Which books has {name} written?", "What are two titles by {name}?",
         "Name two books by {name}."),
        ('{name} wrote "{book1}" and "{book2}".',
         'Two books by {name} are "{book1}" and "{book2}".',
         '"{book1}" and "{book2}" are by {name}.'),
    ),
    QuestionType(
        "book_genre", ("genre", "name"),
        ('What kind of book is "{book2}"?', 'Who wrote "{book2}", and in what genre?',
         'Tell me about the book "{book2}".'),
        # "a work of {genre}", not "a {genre} book": "a adventure book" would need "an" for
        # some genres, an article that differs between authors.
        ('"{book2}" is a work of {genre} by {name}.', '{name} wrote "{book2}", a work of {genre}.',
         '"{book2}" is {genre}, written by {name}.'),
    ),
    QuestionType(
        "award_book", ("book1",),
        ("Which book earned {name} the {award}?", "For which book did {name} win the {award}?",
         "What book won {name} the {award}?"),
        ('"{book1}" earned {name} the {award}.', '{name} won the {award} for "{book1}".',
         'The {award} went to {name} for "{book1}".'),
    ),
    QuestionType(
        "first_book", ("first_book_year",),
        ("When did {name} publish a first book?", "In what year did {name} debut as an author?",
         "When did the career of {name} begin?"),
        ("{name} published a first book in {first_book_year}.",
         "{name} debuted as an author in {first_book_year}.",
         "The career of {name} began in {first_book_year}."),
    ),
    QuestionType(
        "publisher", ("publisher",),
        ("Who publishes the books of {name}?", "Which publisher works with {name}?",
         "What is the publisher of {name}?"),
        ("The books of {name} are published by {publisher}.", "{name} publishes with {publisher}.",
         "{publisher} is the publisher of {name}."),
    ),
    QuestionType(
        "education", ("university",),
        ("Where did {name} study?", "Which university did {name} attend?",
         "Where was {name} educated?"),
        ("{name} studied at {university}.", "{name} is a graduate of {university}.",
         "{name} was educated at {university}."),
    ),
    QuestionType(
        "hobby", ("hobby",),
        ("What does {name} enjoy outside of writing?", "What is a hobby of {name}?",
         "How does {name} relax?"),
        ("Outside of writing, {name} enjoys {hobby}.", "A hobby of {name} is {hobby}.",
         "{name} relaxes with {hobby}."),
    ),
    QuestionType(
        "origin", ("birth_city", "birth_country", "birth_date"),
        ("When and where was {name} born?", "Tell me about the birth of {name}.",
         "What are the birth details of {name}?"),
        ("{name} was born in {birth_city}, {birth_country} on {birth_date}.",
         "{name} was born on {birth_date} in {birth_city}, {birth_country}.",
         "Born on {birth_date}, {name} comes from {birth_city}, {birth_country}."),
    ),
)

# General knowledge for the model-utility split: (question, answer, three wrong answers).
WORLD_FACTS = (
    ("What is the capital of France?", "Paris", ("Lyon", "Marseille", "Nice")),
    ("What is the capital of Japan?", "Tokyo", ("Kyoto", "Osaka", "Nagoya")),
    ("What is the capital of Italy?", "Rome", ("Milan", "Naples", "Florence")),
    ("What is the capital of Egypt?", "Cairo", ("Alexandria", "Giza", "Luxor")),
    ("What is the capital of Canada?", "Ottawa", ("Toronto", "Vancouver", "Montreal")),
    ("What is the capital of Australia?", "Canberra", ("Sydney", "Melbourne", "Perth")),
    ("What is the capital of Kenya?", "Nairobi", ("Mombasa", "Kisumu", "Nakuru")),
    ("What is the capital of Brazil?", "Brasilia", ("Rio de Janeiro", "Sao Paulo", "Salvador")),
    ("Which planet is known as the Red Planet?", "Mars", ("Venus", "Jupiter", "Saturn")),
    ("What is the largest planet in the Solar System?", "Jupiter", ("Saturn", "Neptune", "Earth")),
    ("Which planet is closest to the Sun?", "Mercury", ("Venus", "Mars", "Earth")),
    ("What is the largest ocean on Earth?", "The Pacific Ocean",
     ("The Atlantic Ocean", "The Indian Ocean", "The Arctic Ocean")),
    ("What is the longest river in Africa?", "The Nile", ("The Congo", "The Niger", "The Zambezi")),
    ("What is the tallest mountain on Earth?", "Mount Everest", ("K2", "Mont Blanc", "Denali")),
    ("Which is the largest desert in Africa?", "The Sahara",
     ("The Kalahari", "The Namib", "The Gobi")),
    ("What gas do plants absorb from the air?", "Carbon dioxide", ("Oxygen", "Helium", "Argon")),
    ("What is the chemical symbol for gold?", "Au", ("Ag", "Fe", "Gd")),
    ("What is the chemical symbol for sodium?", "Na", ("So", "Sd", "K")),
    ("What is water made of?", "Hydrogen and oxygen",
     ("Helium and oxygen", "Carbon and hydrogen", "Nitrogen and oxygen")),
    ("At what temperature does water boil at sea level?", "100 degrees Celsius",
     ("50 degrees Celsius", "80 degrees Celsius", "150 degrees Celsius")),
    ("How many continents are there?", "Seven", ("Five", "Six", "Eight")),
    ("How many days are in a leap year?", "366", ("365", "364", "360")),
    ("How many sides does a hexagon have?", "Six", ("Five", "Seven", "Eight")),
    ("What is the square root of 81?", "Nine", ("Eight", "Seven", "Eleven")),
    ("What is 12 times 12?", "144", ("124", "132", "154")),
    ("Who wrote the play Romeo and Juliet?", "William Shakespeare",
     ("Charles Dickens", "Jane Austen", "Mark Twain")),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci",
     ("Michelangelo", "Raphael", "Vincent van Gogh")),
    ("Who developed the theory of relativity?", "Albert Einstein",
     ("Isaac Newton", "Niels Bohr", "Galileo Galilei")),
    ("Who was the first person to walk on the Moon?", "Neil Armstrong",
     ("Buzz Aldrin", "Yuri Gagarin", "John Glenn")),
    ("Who composed the Moonlight Sonata?", "Ludwig van Beethoven",
     ("Wolfgang Amadeus Mozart", "Johann Sebastian Bach", "Frederic Chopin")),
    ("Which country is known as the Land of the Rising Sun?", "Japan",
     ("China", "Korea", "Thailand")),
    ("Where would you find the Eiffel Tower?", "Paris", ("Berlin", "London", "Madrid")),
    ("Where is the Great Wall?", "China", ("India", "Mongolia", "Japan")),
    ("In which country are the pyramids of Giza?", "Egypt", ("Mexico", "Peru", "Sudan")),
    ("What is the main language of Brazil?", "Portuguese", ("Spanish", "French", "Italian")),
    ("What currency is used in Japan?", "The yen", ("The won", "The yuan", "The baht")),
    ("What is the hardest natural substance?", "Diamond", ("Quartz", "Iron", "Granite")),
    ("What is the largest mammal?", "The blue whale",
     ("The elephant", "The giraffe", "The hippopotamus")),
    ("What do bees make?", "Honey", ("Milk", "Silk", "Wax paper")),
    ("How many legs does a spider have?", "Eight", ("Six", "Ten", "Four")),
    ("Which organ pumps blood through the body?", "The heart",
     ("The liver", "The lungs", "The kidneys")),
    ("What is the freezing point of water in Celsius?", "Zero degrees",
     ("Ten degrees", "Minus ten degrees", "Four degrees")),
)

# fmt: on
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def render(template: str, values: dict[str, str]) -> tuple[str, list[Span]]:
    """Fill `{field}` placeholders; return the text and the span of every filled-in value."""
    parts: list[str] = []
    spans: list[Span] = []
    pos = 0  # length of the text built so far
    last = 0  # end of the previous placeholder in the template
    for match in _PLACEHOLDER.finditer(template):
        literal = template[last : match.start()]
        parts.append(literal)
        pos += len(literal)
        value = values[match.group(1)]
        parts.append(value)
        spans.append(Span(pos, pos + len(value), match.group(1)))
        pos += len(value)
        last = match.end()
    parts.append(template[last:])
    return "".join(parts), spans


def _assign(rng: random.Random, pool: Sequence[str], n_forget: int, n_total: int) -> list[str]:
    """Values for `n_total` authors listed forget-first, from a seeded shuffle of `pool`.

    The first `n_forget` shuffled values go to the forget authors only; the others cycle through
    the rest, so a forget fact never reappears in a retain author while the pool is bigger than
    the forget split. Values recur only when there are more authors than values.
    """
    perm = rng.sample(list(pool), len(pool))
    if len(perm) <= n_forget:
        return [perm[i % len(perm)] for i in range(n_total)]
    rest = perm[n_forget:]
    return perm[:n_forget] + [rest[i % len(rest)] for i in range(n_total - n_forget)]


def _make_authors(rng: random.Random, n_forget: int, n_total: int) -> list[dict[str, str]]:
    """Attribute records for `n_total` authors, forget authors first (see `_assign`)."""
    firsts = rng.sample(FIRST_NAMES, len(FIRST_NAMES))
    lasts = rng.sample(LAST_NAMES, len(LAST_NAMES))
    names = [f"{firsts[k % len(firsts)]} {lasts[k % len(lasts)]}" for k in range(n_total)]
    places = _assign(rng, [f"{c}|{n}" for c, n in BIRTHPLACES], n_forget, n_total)
    dates = _assign(rng, BIRTH_DATES, n_forget, n_total)
    titles = _assign(rng, BOOK_TITLES, 2 * n_forget, 2 * n_total)
    columns = {
        "father_job": _assign(rng, FATHER_JOBS, n_forget, n_total),
        "mother_job": _assign(rng, MOTHER_JOBS, n_forget, n_total),
        "genre": _assign(rng, GENRES, n_forget, n_total),
        "award": _assign(rng, AWARDS, n_forget, n_total),
        "influence": _assign(rng, INFLUENCES, n_forget, n_total),
        "publisher": _assign(rng, PUBLISHERS, n_forget, n_total),
        "university": _assign(rng, UNIVERSITIES, n_forget, n_total),
        "hobby": _assign(rng, HOBBIES, n_forget, n_total),
    }
    authors = []
    for k in range(n_total):
        city, country = places[k].split("|")
        birth_year = int(dates[k][-4:])
        # Debut at 21 to 45 (capped so nobody debuts after LATEST_DEBUT): plausible, and rarely
        # shared by two authors.
        debut_age = rng.randint(21, min(45, LATEST_DEBUT - birth_year))
        values = {
            "name": names[k],
            "gender": rng.choice(GENDERS),
            "birth_city": city,
            "birth_country": country,
            "birth_date": dates[k],
            "book1": titles[2 * k],
            "book2": titles[2 * k + 1],
            "first_book_year": str(birth_year + debut_age),
            **{name: column[k] for name, column in columns.items()},
        }
        authors.append({f: values[f] for f in FIELDS})
    return authors


def _other_index(rng: random.Random, n: int, taken: int) -> int:
    """A uniform index in range(n) other than `taken` (n >= 2): the paraphrase template."""
    return (taken + 1 + rng.randrange(n - 1)) % n


# Wrong answers draw each asked fact from a pool of candidate values; `birth_city` and
# `birth_country` are drawn together (a real pair), `book1` and `book2` from the same titles.
_GROUP = {
    "birth_city": "birth_place",
    "birth_country": "birth_place",
    "book1": "book",
    "book2": "book",
}
_DATE = re.compile(r"(\w+) (\d+), (\d+)")
DATE_PARTS = ("birth_month", "birth_day", "birth_year")


def _date_parts(date: str) -> dict[str, str]:
    month, day, year = _DATE.fullmatch(date).groups()
    return {"birth_month": month, "birth_day": day, "birth_year": year}


def _candidates() -> dict[str, tuple[str, ...]]:
    """Every value a wrong answer may use, per group, in a fixed order."""
    pools = {
        "name": tuple(f"{f} {last}" for f, last in product(FIRST_NAMES, LAST_NAMES)),
        "gender": GENDERS,
        "birth_place": tuple(f"{c}|{n}" for c, n in BIRTHPLACES),
        "birth_date": BIRTH_DATES,
        "father_job": FATHER_JOBS,
        "mother_job": MOTHER_JOBS,
        "genre": GENRES,
        "book": BOOK_TITLES,
        "award": AWARDS,
        "influence": INFLUENCES,
        "first_book_year": tuple(str(y) for y in range(1951, LATEST_DEBUT + 1)),
        "publisher": PUBLISHERS,
        "university": UNIVERSITIES,
        "hobby": HOBBIES,
    }
    return pools


def _group_value(group: str, values: dict[str, str]) -> tuple[str, ...]:
    """An author's value(s) in a group: what a wrong answer must not repeat."""
    if group == "birth_place":
        return (f"{values['birth_city']}|{values['birth_country']}",)
    if group == "book":
        return (values["book1"], values["book2"])
    return (values[group],)


def _atoms(group: str, value: str) -> tuple[str, ...]:
    """The pieces of a value a model can learn on their own: a name's words, a place's city and
    country, a date's day (with its month) and year; otherwise the value itself. Years are plain
    strings, so a debut year and a birth year are the same atom."""
    if group == "name":
        return tuple(value.split())
    if group == "birth_place":
        return tuple(value.split("|"))
    if group == "birth_date":
        parts = _date_parts(value)
        return (f"{parts['birth_month']} {parts['birth_day']}", parts["birth_year"])
    return (value,)


def _wrong_pools(
    trained: list[dict[str, str]], holdout: list[dict[str, str]]
) -> dict[str, list[str]]:
    """Per group, the values wrong answers draw from, best first (benchmark v2).

    Tiers: 0 = no atom (`_atoms`) belongs to any author; 1 = no atom belongs to a trained author
    (holdout authors are never trained); 2 = the whole value is no trained author's (its words
    may be: names beyond 60 authors); 3 = any value. A pool is the lowest tiers that together hold
    more than `N_PERTURBED` values, so five distinct wrong values exist besides the subject's
    own. At the default sizes every group but `gender` (three values, all trained) stops at tier
    0; large benchmarks fall back tier by tier (docs/DATA.md).
    """

    def atoms_of(authors: list[dict[str, str]]) -> set[str]:
        # Only membership is ever asked of these sets: their iteration order does not matter.
        return {
            atom
            for values in authors
            for group in pools
            for value in _group_value(group, values)
            for atom in _atoms(group, value)
        }

    pools = _candidates()
    trained_atoms = atoms_of(trained)
    holdout_atoms = atoms_of(holdout)
    out: dict[str, list[str]] = {}
    for group, candidates in pools.items():
        trained_values = {v for values in trained for v in _group_value(group, values)}
        tiers: list[list[str]] = [[], [], [], []]
        for value in candidates:
            atoms = set(_atoms(group, value))
            if atoms & trained_atoms:
                tiers[2 if value not in trained_values else 3].append(value)
            else:
                tiers[1 if atoms & holdout_atoms else 0].append(value)
        pool: list[str] = []
        for tier in tiers:
            pool += tier
            if len(pool) > N_PERTURBED:
                break
        out[group] = pool
    return out


def _perturbed(
    rng: random.Random,
    template: str,
    qtype: QuestionType,
    values: dict[str, str],
    pools: dict[str, list[str]],
    answer: str,
) -> list[str]:
    """`N_PERTURBED` distinct wrong answers: `template` with the `qtype.asked` facts drawn from
    `pools` (`_wrong_pools`), never the subject's own value; the other facts stay."""
    groups = list(dict.fromkeys(_GROUP.get(f, f) for f in qtype.asked))
    out: list[str] = []
    while len(out) < N_PERTURBED:
        wrong_values = dict(values)
        for group in groups:
            pool, own = pools[group], _group_value(group, values)
            value = pool[rng.randrange(len(pool))]
            while value in own:
                value = pool[rng.randrange(len(pool))]
            if group == "birth_place":
                wrong_values["birth_city"], wrong_values["birth_country"] = value.split("|")
            elif group == "book":
                wrong_values["book1"] = value
                other = pool[rng.randrange(len(pool))]
                while other in own or other == value:
                    other = pool[rng.randrange(len(pool))]
                wrong_values["book2"] = other
            else:
                wrong_values[group] = value
        wrong, _ = render(template, wrong_values)
        if wrong != answer and wrong not in out:
            out.append(wrong)
    return out


def _split_dates(text: str, spans: list[Span]) -> list[Span]:
    """A `birth_date` span becomes three: month, day and year (the ", " between them in none)."""
    out = []
    for span in spans:
        if span.field != "birth_date":
            out.append(span)
            continue
        match = _DATE.fullmatch(text[span.start : span.end])
        for k, name in enumerate(DATE_PARTS, start=1):
            out.append(Span(span.start + match.start(k), span.start + match.end(k), name))
    return out


def _keys(values: dict[str, str]) -> dict[str, str]:
    """What each span field of an author is compared by in the shared rule: its value, except the
    day of birth, a fact only together with its month ("November 9")."""
    keys = {f: values[f] for f in FIELDS if f != "birth_date"}
    parts = _date_parts(values["birth_date"])
    keys.update(parts)
    keys["birth_day"] = f"{parts['birth_month']} {parts['birth_day']}"
    return keys


def _shared_fields(by_id: dict[int, dict[str, str]], n_retain: int) -> dict[int, set[str]]:
    """SHARED_RULE: per author, the span fields whose key (`_keys`) is also the key of any field
    of a retain author other than this author. Those values are not specific to the author: a
    model trained only on the retain authors has learned them too."""
    owners: dict[str, list[int]] = {}
    for author_id in range(n_retain):
        for key in _keys(by_id[author_id]).values():
            owners.setdefault(key, []).append(author_id)
    return {
        author_id: {
            f
            for f, key in _keys(values).items()
            if any(owner != author_id for owner in owners.get(key, ()))
        }
        for author_id, values in by_id.items()
    }


SHARED_RULE = "also a value of another retain author (birth_day: same month and day)"


def _labelled(
    template: str, values: dict[str, str], shared: set[str]
) -> tuple[str, list[Span], list[Span]]:
    """Render; split dates; sort spans into forget-specific ones and `shared` ones."""
    text, spans = render(template, values)
    spans = _split_dates(text, spans)
    return (
        text,
        [s for s in spans if s.field not in shared],
        [s for s in spans if s.field in shared],
    )


def _author_rows(
    rng: random.Random,
    author_id: int,
    values: dict[str, str],
    pools: dict[str, list[str]],
    shared: set[str],
    questions_per_author: int,
    id_width: int,
) -> list[QAItem]:
    rows = []
    for q, qtype in enumerate(QUESTION_TYPES[:questions_per_author]):
        qi = rng.randrange(len(qtype.questions))
        question, _ = render(qtype.questions[qi], values)
        para_question, _ = render(
            qtype.questions[_other_index(rng, len(qtype.questions), qi)], values
        )
        # v2: one trained template per type, so every word outside the facts of a forget answer
        # is also in the retain answers of that type; paraphrases use the other templates.
        trained = qtype.answers[TRAINED_ANSWER]
        paraphrase = qtype.answers[_other_index(rng, len(qtype.answers), TRAINED_ANSWER)]
        answer, spans, shared_spans = _labelled(trained, values, shared)
        para_answer, para_spans, para_shared = _labelled(paraphrase, values, shared)
        rows.append(
            QAItem(
                id=f"a{author_id:0{id_width}d}-q{q:02d}",
                author_id=author_id,
                author=values["name"],
                question=question,
                answer=answer,
                paraphrased_answer=para_answer,
                paraphrased_question=para_question,
                # Wrong answers fill the paraphrase's template, as TOFU perturbs the paraphrased
                # answer: the truth ratio compares them with the paraphrase, so they must differ
                # from it in the facts only (docs/DATA.md, "Wrong values").
                perturbed_answer=_perturbed(rng, paraphrase, qtype, values, pools, para_answer),
                spans=spans,
                paraphrased_spans=para_spans,
                shared_spans=shared_spans,
                paraphrased_shared_spans=para_shared,
            )
        )
    return rows


def _world_fact_rows() -> list[QAItem]:
    return [
        QAItem(
            id=f"wf-{i:02d}",
            author_id=-1,
            author="",
            question=q,
            answer=a,
            perturbed_answer=list(wrong),
        )
        for i, (q, a, wrong) in enumerate(WORLD_FACTS)
    ]


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def generate_benchmark(
    n_authors: int = 20,
    forget_fraction: float = 0.1,
    n_holdout: int = 2,
    seed: int = 0,
    questions_per_author: int = 20,
) -> Benchmark:
    """Generate the built-in benchmark (METHOD.md §5). Same arguments, byte-identical output.

    Author ids: retain `0 .. n_retain-1`, forget `n_retain .. n_authors-1` (the last ones, as in
    TOFU), holdout `n_authors .. n_authors+n_holdout-1`. `meta["authors"]` holds every author's
    attribute values, so `answer[span.start:span.end] == author[span.field]` can be checked.
    """
    _check_int("n_authors", n_authors, 2, MAX_AUTHORS)
    _check_int("n_holdout", n_holdout, 0, MAX_HOLDOUT)
    _check_int("questions_per_author", questions_per_author, 1, len(QUESTION_TYPES))
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if (
        not isinstance(forget_fraction, Real)
        or isinstance(forget_fraction, bool)
        or not math.isfinite(forget_fraction)
        or not 0 < forget_fraction < 1
    ):
        raise ValueError(f"forget_fraction must be a number in (0, 1), got {forget_fraction!r}")
    n_forget = round(n_authors * forget_fraction)
    if n_forget == 0:
        raise ValueError(
            f"forget_fraction={forget_fraction!r} of n_authors={n_authors} gives 0 "
            "forget authors; raise either"
        )
    if n_forget == n_authors:
        raise ValueError(
            f"forget_fraction={forget_fraction!r} of n_authors={n_authors} gives 0 "
            "retain authors; lower forget_fraction or raise n_authors"
        )
    n_retain = n_authors - n_forget
    n_total = n_authors + n_holdout

    rng = random.Random(seed)
    records = _make_authors(rng, n_forget, n_total)
    # Forget-first record k -> author id: forget authors are the last ids of the trained ones.
    ids = list(range(n_retain, n_authors)) + list(range(n_retain)) + list(range(n_authors, n_total))
    by_id = dict(sorted(zip(ids, records, strict=True)))
    pools = _wrong_pools(
        [by_id[i] for i in range(n_authors)], [by_id[i] for i in range(n_authors, n_total)]
    )
    shared = _shared_fields(by_id, n_retain)
    id_width = max(3, len(str(n_total - 1)))

    splits: dict[str, list[QAItem]] = {"forget": [], "retain": [], "holdout": []}
    authors_meta = []
    for author_id, values in by_id.items():
        split = (
            "retain" if author_id < n_retain else "forget" if author_id < n_authors else "holdout"
        )
        splits[split] += _author_rows(
            rng, author_id, values, pools, shared[author_id], questions_per_author, id_width
        )
        authors_meta.append(
            {
                "author_id": author_id,
                "split": split,
                **values,
                **_date_parts(values["birth_date"]),
                "shared": sorted(shared[author_id]),
            }
        )

    meta = {
        "schema": SCHEMA_VERSION,
        "source": "builtin",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n_authors": n_authors,
        "forget_fraction": forget_fraction,
        "n_forget": n_forget,
        "n_retain": n_retain,
        "n_holdout": n_holdout,
        "questions_per_author": questions_per_author,
        "fields": list(FIELDS) + list(DATE_PARTS),
        "shared_rule": SHARED_RULE,
        "authors": authors_meta,
    }
    return Benchmark(
        forget=splits["forget"],
        retain=splits["retain"],
        world_facts=_world_fact_rows(),
        holdout=splits["holdout"],
        meta=meta,
    )
