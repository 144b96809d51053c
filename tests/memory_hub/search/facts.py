"""Hand-written facts and paraphrased questions that share (almost) no words with them."""
from __future__ import annotations

FACTS = {
    "fact-wifi": "The wifi password for the guest network is ZX-4471.",
    "fact-birthday": "Maria's birthday is on the fourteenth of March.",
    "fact-allergy": "The user is allergic to peanuts and shellfish.",
    "fact-backup": "Backups of the NAS run every Sunday at 3 am.",
    "fact-dog": "The dog is called Biscuit and is a golden retriever.",
    "fact-grandma": "Grandma lives in Lisbon near the river.",
    "fact-car": "The car needs an oil change after 15000 kilometres.",
    "fact-dentist": "Dentist appointment on Thursday at 10 o'clock.",
    "fact-key": "The spare house key is hidden under the flower pot by the door.",
    "fact-language": "The user prefers replies in Portuguese.",
}

# question -> the fact it must find in the top 3 (little or no word overlap)
PARAPHRASES = {
    "login secret for visitors' internet": "fact-wifi",
    "which foods could give me a bad reaction": "fact-allergy",
    "when is the file server copied for safekeeping": "fact-backup",
    "what's the name of our pet": "fact-dog",
    "where does my nan reside": "fact-grandma",
    "when is the vehicle due for maintenance": "fact-car",
    "when do I see someone about my teeth": "fact-dentist",
    "how do I get inside if I'm locked out": "fact-key",
    "which language should answers be written in": "fact-language",
    "when do we celebrate her getting a year older": "fact-birthday",
}
